"""Tiny random-weight VLMs of the real transformers classes, built offline for tests.

``build_tiny_vlm(family, folder)`` writes a model, its real processor class and the family's
real chat template (as the model repos ship it) to ``folder``, to be loaded back through
``load_backend("hf:<folder>")`` exactly as a downloaded model is. Tokenizers are word-level
``tokenizers`` objects over the project's prompt words; whether they add a BOS token follows
the family's real tokenizer (Llama, Mistral, Llama 3 and Gemma add one, Qwen and SmolLM do not).
Answers of these models measure nothing: the tests compare batched with one-by-one answers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors

from emolib.labels import LABEL_SETS
from emolib.templates import load_templates

# The chat templates of the model repos (llava-1.5-7b-hf, llava-v1.6-mistral-7b-hf, Qwen2-VL /
# Qwen2.5-VL Instruct, Idefics3-8B-Llama3); Gemma 3's is transformers' test copy of gemma-3-it's
# (same user turn, BOS written by the template); SmolVLM's is transformers' own default.
LLAVA_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}"
    "{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}")
LLAVA_NEXT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{ '<<SYS>>\n' + message['content'][0]['text'] + '\n<</SYS>>\n\n' }}{% elif message['role'] == 'user' %}"
    "{{ '[INST] ' }}{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{# Render all text next #}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] }}{% endfor %}{{' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' ' + message['content'][0]['text'] + '</s> '}}{% else %}"
    "{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}")
QWEN2_VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
IDEFICS3_TEMPLATE = (
    "<|begin_of_text|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")
GEMMA3_TEMPLATE = (
    "{{ bos_token }}\n{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n{%- else -%}\n    {%- set first_user_prefix = \"\" -%}\n"
    "    {%- set loop_messages = messages -%}\n{%- endif -%}\n{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    "        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n"
    "    {%- endif -%}\n    {%- if (message['role'] == 'assistant') -%}\n        {%- set role = \"model\" -%}\n"
    "    {%- else -%}\n        {%- set role = message['role'] -%}\n    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n        {%- endfor -%}\n    {%- else -%}\n"
    "        {{ raise_exception(\"Invalid content type\") }}\n    {%- endif -%}\n    {{ '<end_of_turn>\n' }}\n"
    "{%- endfor -%}\n{%- if add_generation_prompt -%}\n    {{'<start_of_turn>model\n'}}\n{%- endif -%}\n")

ROLE_WORDS = {"USER", "ASSISTANT", "User", "Assistant", "user", "assistant", "model", "system"}
GRID_TOKENS = [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
QWEN_SPECIALS = ["<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>"]
IDEFICS_SPECIALS = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>", *GRID_TOKENS]
PRE_TOKENIZER = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])


def prompt_words(template: str = "") -> set[str]:
    """Every word of the project's generative prompts, label names, roles and ``template``."""
    texts = [*load_templates()["generative"].values(), template, *ROLE_WORDS,
             *(n for s in LABEL_SETS.values() for n in s.names)]
    return {word for text in texts for word, _ in PRE_TOKENIZER.pre_tokenize_str(text)}


def word_tokenizer(specials: list[str], template: str = "", *, bos: str | None, eos: str, pad: str,
                   add_bos: bool, **kwargs):
    """A word-level fast tokenizer; ``specials`` first (ids 0..), adding ``bos`` when ``add_bos``."""
    from transformers import PreTrainedTokenizerFast

    words = sorted(prompt_words(template) - set(specials))
    vocab = {w: i for i, w in enumerate(specials + words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = PRE_TOKENIZER
    tok.add_special_tokens(specials)  # matched before splitting
    if add_bos:
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A $B",
                                                           special_tokens=[(bos, vocab[bos])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token=bos, eos_token=eos,
                                   pad_token=pad, padding_side="left", add_bos_token=add_bos,
                                   model_input_names=["input_ids", "attention_mask"], **kwargs)


def _silence(model, token_ids: list[int]) -> None:
    """Logit 0 for ``token_ids``, so a random model answers in words (not EOS at once)."""
    with torch.no_grad():
        model.get_output_embeddings().weight[token_ids] = 0.0


def _text(cls, vocab_size: int, **kwargs):
    base = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    return cls(**{**base, **kwargs})


def _llava() -> tuple:
    import transformers as tf

    specials = ["<unk>", "<pad>", "<s>", "</s>", "<image>"]
    tokenizer = word_tokenizer(specials, LLAVA_TEMPLATE, bos="<s>", eos="</s>", pad="<pad>", add_bos=True)
    processor = tf.LlavaProcessor(
        image_processor=tf.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer, patch_size=16, vision_feature_select_strategy="default",
        chat_template=LLAVA_TEMPLATE, num_additional_image_tokens=1)
    config = tf.LlavaConfig(
        vision_config=tf.CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, image_size=32, patch_size=16),
        text_config=_text(tf.LlamaConfig, len(tokenizer), pad_token_id=1, bos_token_id=2, eos_token_id=3),
        image_token_index=4, vision_feature_layer=-1, vision_feature_select_strategy="default",
        image_seq_length=4)
    return tf.LlavaForConditionalGeneration(config), processor


def _llava_next() -> tuple:
    import transformers as tf

    specials = ["<unk>", "<pad>", "<s>", "</s>", "<image>"]
    tokenizer = word_tokenizer(specials, LLAVA_NEXT_TEMPLATE, bos="<s>", eos="</s>", pad="<pad>", add_bos=True)
    pinpoints = [[32, 64], [64, 32], [64, 64]]
    image_processor = tf.LlavaNextImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                              image_grid_pinpoints=pinpoints)
    processor = tf.LlavaNextProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=16,
                                   vision_feature_select_strategy="default", chat_template=LLAVA_NEXT_TEMPLATE,
                                   num_additional_image_tokens=1)
    config = tf.LlavaNextConfig(
        vision_config=tf.CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, image_size=32, patch_size=16),
        text_config=_text(tf.MistralConfig, len(tokenizer), pad_token_id=1, bos_token_id=2, eos_token_id=3),
        image_token_index=4, vision_feature_layer=-1, vision_feature_select_strategy="default",
        image_grid_pinpoints=pinpoints, image_seq_length=4)
    return tf.LlavaNextForConditionalGeneration(config), processor


def _qwen_vl(version: str) -> Callable[[], tuple]:
    def build() -> tuple:
        import transformers as tf

        tokenizer = word_tokenizer(QWEN_SPECIALS, QWEN2_VL_TEMPLATE, bos=None, eos="<|im_end|>",
                                   pad="<|endoftext|>", add_bos=False)
        image_processor = tf.Qwen2VLImageProcessor(min_pixels=28 * 28, max_pixels=84 * 84, patch_size=14,
                                                merge_size=2, temporal_patch_size=2)
        processor_cls = tf.Qwen2VLProcessor if version == "2" else tf.Qwen2_5_VLProcessor
        video = tf.Qwen2VLVideoProcessor()
        processor = processor_cls(image_processor=image_processor, tokenizer=tokenizer, video_processor=video,
                                  chat_template=QWEN2_VL_TEMPLATE)
        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIALS}
        vision = dict(depth=1, hidden_size=32, num_heads=2, patch_size=14, spatial_merge_size=2,
                      temporal_patch_size=2, in_channels=3)
        if version == "2":
            config_cls, model_cls = tf.Qwen2VLConfig, tf.Qwen2VLForConditionalGeneration
            vision |= dict(embed_dim=16, mlp_ratio=2)
        else:
            config_cls, model_cls = tf.Qwen2_5_VLConfig, tf.Qwen2_5_VLForConditionalGeneration
            vision |= dict(intermediate_size=32, out_hidden_size=32, window_size=56, fullatt_block_indexes=[0])
        config = config_cls(
            text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                             rope_scaling={"type": "mrope", "mrope_section": [2, 1, 1]},
                             bos_token_id=None, eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"]),
            vision_config=vision, image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
            vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
        return model_cls(config), processor

    return build


def _idefics(smol: bool) -> Callable[[], tuple]:
    def build() -> tuple:
        import transformers as tf

        if smol:
            from transformers.models.smolvlm.processing_smolvlm import DEFAULT_CHAT_TEMPLATE as template

            specials = ["<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", *IDEFICS_SPECIALS, "<video>"]
            tokenizer = word_tokenizer(specials, template, bos="<|im_start|>", eos="<end_of_utterance>",
                                       pad="<|im_end|>", add_bos=False)
        else:
            template = IDEFICS3_TEMPLATE
            specials = ["<unk>", "<|begin_of_text|>", "<|end_of_text|>", "<pad>", *IDEFICS_SPECIALS]
            tokenizer = word_tokenizer(specials, template, bos="<|begin_of_text|>", eos="<end_of_utterance>",
                                       pad="<pad>", add_bos=True)
        ip_cls = tf.SmolVLMImageProcessor if smol else tf.Idefics3ImageProcessor
        image_processor = ip_cls(size={"longest_edge": 64}, max_image_size={"longest_edge": 32},
                                 do_image_splitting=True)
        kwargs = dict(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=4, chat_template=template)
        if smol:
            kwargs["video_processor"] = tf.SmolVLMVideoProcessor()
        processor = (tf.SmolVLMProcessor if smol else tf.Idefics3Processor)(**kwargs)
        config_cls = tf.SmolVLMConfig if smol else tf.Idefics3Config
        vision_cls = tf.SmolVLMVisionConfig if smol else tf.Idefics3VisionConfig
        text_cls = tf.LlamaConfig
        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in specials}
        config = config_cls(
            vision_config=vision_cls(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     image_size=32, patch_size=8),
            text_config=_text(text_cls, len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                              bos_token_id=tokenizer.bos_token_id, eos_token_id=ids["<end_of_utterance>"]),
            image_token_id=ids["<image>"], scale_factor=2, pad_token_id=tokenizer.pad_token_id)
        model_cls = tf.SmolVLMForConditionalGeneration if smol else tf.Idefics3ForConditionalGeneration
        return model_cls(config), processor

    return build


def _gemma3() -> tuple:
    import transformers as tf

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>",
                "<end_of_image>", "<image_soft_token>"]
    tokenizer = word_tokenizer(specials, GEMMA3_TEMPLATE, bos="<bos>", eos="<eos>", pad="<pad>", add_bos=True,
                               extra_special_tokens={"image_token": "<image_soft_token>",
                                                     "boi_token": "<start_of_image>", "eoi_token": "<end_of_image>"})
    processor = tf.Gemma3Processor(image_processor=tf.Gemma3ImageProcessor(size={"height": 32, "width": 32}),
                                tokenizer=tokenizer, chat_template=GEMMA3_TEMPLATE, image_seq_length=4)
    config = tf.Gemma3Config(
        vision_config=tf.SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, image_size=32, patch_size=8),
        text_config=_text(tf.Gemma3TextConfig, len(tokenizer), head_dim=8, sliding_window=64, pad_token_id=0,
                          eos_token_id=1, bos_token_id=2),
        mm_tokens_per_image=4, boi_token_index=6, eoi_token_index=7, image_token_index=8)
    return tf.Gemma3ForConditionalGeneration(config), processor


def _paligemma() -> tuple:
    import transformers as tf

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<image>"]
    tokenizer = word_tokenizer(specials, bos="<bos>", eos="<eos>", pad="<pad>", add_bos=True)
    image_processor = tf.SiglipImageProcessor(size={"height": 32, "width": 32})
    image_processor.image_seq_length = 16
    processor = tf.PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)
    config = tf.PaliGemmaConfig(
        vision_config=tf.SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, image_size=32, patch_size=8, projection_dim=32),
        text_config=_text(tf.GemmaConfig, len(processor.tokenizer), head_dim=8, pad_token_id=0, eos_token_id=1,
                          bos_token_id=2),
        image_token_index=4, projection_dim=32)
    return tf.PaliGemmaForConditionalGeneration(config), processor


BUILDERS: dict[str, Callable[[], tuple]] = {
    "llava": _llava, "llava_next": _llava_next, "qwen2_vl": _qwen_vl("2"), "qwen2_5_vl": _qwen_vl("2.5"),
    "idefics3": _idefics(smol=False), "smolvlm": _idefics(smol=True), "gemma3": _gemma3, "paligemma": _paligemma,
}
FAMILIES = tuple(BUILDERS)


def build_tiny_vlm(family: str, folder: str | Path, seed: int = 0) -> Path:
    """Write the tiny ``family`` model (one of ``FAMILIES``) and its processor to ``folder``."""
    folder = Path(folder)
    torch.manual_seed(seed)
    model, processor = BUILDERS[family]()
    model.eval()
    _silence(model, sorted(processor.tokenizer.get_added_vocab().values()))  # specials and PaliGemma's <loc>
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder

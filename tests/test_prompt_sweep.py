"""The prompt sweep end to end: a tiny random-weight local VLM and the OpenAI-compatible
backend against a local server (127.0.0.1) that favours the first listed label; the response
cache makes a rerun call-free and lets an interrupted sweep resume. The sweep's images are
drawn from notebook 01's evaluation subsets, so the data stage runs first (``smoke_stages``)."""

from __future__ import annotations

import pytest
from fake_servers import FirstLabelServer
from smoke_stages import run_data

from emolib import catalog
from emolib.config import load_profile
from emolib.predictions import validate_predictions
from emolib.prompts.analysis import fine_grained_rate, first_position_test, position_bias, variant_orders
from emolib.prompts.sweep import run_prompt_sweep


@pytest.fixture
def server():
    s = FirstLabelServer()
    yield s
    s.close()


def sweep_profile(url: str, variants: list[str], hf: bool = True):
    profile = load_profile("smoke", **{
        "vlm.clip_models": [], "vlm.clip_benchmark_models": [], "vlm.hf_models": ["tiny-random-llava"] if hf else [],
        "vlm.openai_models": ["first-label"], "vlm.openai_base_url": url, "vlm.concurrency": 2,
        "vlm.request_timeout_s": 10.0, "vlm.max_retries": 0, "vlm.max_new_tokens": 4,
        "prompts.variants": variants, "prompts.sample_size": 12, "prompts.n_permutations": 3,
        "prompts.order_sample_size": 2})
    run_data(profile)  # notebook 01: the evaluation subsets the sweep draws from
    return profile


def test_sweep_end_to_end_rerun_is_call_free(server):
    kinds = ["base", "permuted", "order4", "persona_positive"]
    first = run_prompt_sweep(sweep_profile(server.url, kinds), keep_backends=True)
    pred = validate_predictions(first.predictions)
    assert set(first.status["status"]) == {"available"}
    per_model = pred.groupby("model").size().to_dict()
    expected = 12 * 5 + 2 * 24  # base + 3 permutations + persona on 12 images; 24 orders on 2
    assert per_model == {"tiny-random-llava": expected, "first-label": expected}
    assert server.requests == expected
    assert first.backends["hf:tiny-random-llava"].generate_calls > 0
    assert first.store.is_complete() and (first.store.dir / "cost.jsonl").is_file()
    # the sweep's images are named subsets drawn from notebook 01's Emotion6 evaluation subset
    profile = sweep_profile(server.url, kinds)
    pool = set(catalog.subset_ids(profile, catalog.emotion6_eval_name(profile)))
    sample, order4 = (set(catalog.subset_ids(profile, n)) for n in ("emotion6_sweep_12", "emotion6_sweep_order4_2"))
    assert len(sample) == 12 and len(order4) == 2 and sample <= pool and order4 <= pool
    full = pred[~pred.prompt.str.startswith("order4_")]
    assert set(full.subset) == {"emotion6_sweep_12"} and set(full.image_id) == sample
    assert set(pred.loc[pred.prompt.str.startswith("order4_"), "image_id"]) == order4
    assert full.groupby(["model", "prompt"]).size().eq(12).all()  # every variant on the same 12 images
    assert set(pred.restoration) == {"none"} and set(pred.seed) == {0}
    # prompts.datasets [evoked] on smoke is Emotion6 alone, one row of the sets table
    assert first.sets[["set", "status", "subset", "n", "order_subset", "order_n"]].values.tolist() == [
        ["emotion6", "swept", "emotion6_sweep_12", 12, "emotion6_sweep_order4_2", 2]]

    # The server always answers the first listed label: the position curve must show it.
    api = pred[pred.model == "first-label"]
    curve = position_bias(api, variant_orders(first.variants, "permuted_"))
    assert curve.loc[curve.position == 1, "pred_rate"].item() == 1.0
    test = first_position_test(api, variant_orders(first.variants, "order4_"))
    assert test.first_rate.item() == 1.0 and test.excess.item() == 0.75

    again = run_prompt_sweep(sweep_profile(server.url, kinds), force=True, keep_backends=True)  # a rerun: all cached
    assert server.requests == expected
    assert again.backends["hf:tiny-random-llava"].generate_calls == 0
    assert again.predictions.sort_values(["model", "prompt", "image_id"]).y_pred.tolist() == \
        pred.sort_values(["model", "prompt", "image_id"]).y_pred.tolist()


def test_interrupted_sweep_resumes_and_no_labels_maps_free_answers(server):
    done = run_prompt_sweep(sweep_profile(server.url, ["base"], hf=False))  # "interrupted" after base
    assert server.requests == 12
    more = run_prompt_sweep(sweep_profile(server.url, ["base", "no_labels"], hf=False))
    assert server.requests == 24  # only the 12 new no_labels answers were asked
    assert done.store.dir != more.store.dir
    free = more.predictions[more.predictions.prompt == "no_labels"]
    assert (free.y_pred == 3).all() and set(free.parse_status) == {"json"}  # joyful -> joy (emotion6)
    rate = fine_grained_rate(free.raw_response, frozenset({"joyful"}))
    assert rate["fine_grained_rate"] == 0.0 and rate["n"] == 12


def test_failed_calls_leave_the_sweep_partial_and_only_they_are_retried(server):
    server.fail_first = 5
    profile = sweep_profile(server.url, ["base", "persona_negative"], hf=False)
    broken = run_prompt_sweep(profile)
    assert server.requests == 24 and (broken.predictions.parse_status == "error").sum() == 5
    assert (broken.predictions.loc[broken.predictions.parse_status == "error", "y_pred"] == -1).all()
    assert not broken.store.is_complete() and any("retries them" in n for n in broken.notes)
    fixed = run_prompt_sweep(profile)
    assert server.requests == 29  # only the 5 failed answers were asked again
    assert fixed.store.is_complete() and (fixed.predictions.parse_status != "error").all()


def test_no_labels_remap_keeps_empty_and_numeric_answers_unparsed():
    """notebook 05's no_labels mapping: free answer words go to the nearest label only at the
    profile's vlm.embedding_threshold; empty, numeric and word-less answers stay unparsed."""
    import numpy as np

    from emolib.labels import get_label_set
    from emolib.predictions import make_predictions
    from emolib.prompts.sweep import remap_open_answers
    from emolib.vlm.embed import load_embedder

    emotion6 = get_label_set("emotion6")
    answers = {'{"prediction": "blissful"}': "joy", '{"prediction": "joyful"}': "joy",
               '{"prediction": "gloomy"}': "sadness", '{"prediction": "elated"}': None,  # cosine 0.44 < 0.6
               '{"prediction": ""}': None, '{"prediction": 3}': None, '""': None, '"42"': None,
               "HTTP 500 after 4 retries": None}
    frame = make_predictions(
        image_id=[f"img{i}" for i in range(len(answers))], split="test", dataset="emotion6_sweep_9",
        label_set="emotion6", y_true=0, y_pred=-1, model="m", backend="openai", restoration="none",
        prompt="no_labels", seed=0, subset="emotion6_sweep_9", raw_response=list(answers),
        parse_status=["unparseable"] * (len(answers) - 1) + ["error"], latency_s=np.nan)
    threshold = load_profile("smoke").vlm.embedding_threshold
    assert threshold == 0.6
    out = validate_predictions(remap_open_answers(frame, emotion6, load_embedder(), threshold))
    got = dict(zip(out.raw_response, zip(out.y_pred, out.parse_status, strict=True), strict=True))
    for answer, label in answers.items():
        if answer.startswith("HTTP"):
            assert got[answer] == (-1, "error")  # a failed call is not re-read
        elif label is None:
            assert got[answer] == (-1, "unparseable"), answer
        else:
            assert got[answer][0] == emotion6.names.index(label), answer
    assert got['{"prediction": "joyful"}'][1] == "json"  # a synonym: no embedding needed
    assert got['{"prediction": "blissful"}'][1] == got['{"prediction": "gloomy"}'][1] == "embedding_match"
    assert frame["parse_status"].tolist()[0] == "unparseable"  # the input frame is left as it was
    with pytest.raises(ValueError, match="embedding_threshold"):
        remap_open_answers(frame, emotion6, load_embedder(), 0.0)

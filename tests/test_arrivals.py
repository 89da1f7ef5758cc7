"""Availability is part of what a stage depends on: a model that was unavailable when a stage
was stored (here an OpenAI-compatible endpoint that was down) is computed alone on the next
run once it answers, every stored row of the others kept; one that goes away keeps its
earlier predictions, shown as such."""

from __future__ import annotations

from fake_servers import FirstLabelServer, free_port
from smoke_stages import run_data

from emolib.config import load_profile
from emolib.prompts.sweep import run_prompt_sweep
from emolib.vlm.driver import EARLIER
from emolib.vlm.stage import run_zero_shot


def test_an_endpoint_that_comes_up_is_scored_alone_on_the_next_run():
    port = free_port()
    profile = load_profile("smoke", **{
        "vlm.hf_models": [], "vlm.recorded": [], "vlm.openai_models": ["first-label"],
        "vlm.openai_base_url": f"http://127.0.0.1:{port}/v1", "vlm.max_retries": 0, "vlm.request_timeout_s": 5.0,
        "prompts.variants": ["base", "persona_positive"], "prompts.sample_size": 6, "prompts.order_sample_size": 1})
    run_data(profile)
    down = run_zero_shot(profile, {})
    status = down.status.set_index("model")["status"]
    assert status.to_dict() == {"ViT-S-32/random": "available", "first-label": "unavailable"}
    clip_rows = down.predictions.copy()
    sweep_down = run_prompt_sweep(profile)
    assert sweep_down.status["status"].tolist() == ["unavailable"] and sweep_down.predictions.empty

    server = FirstLabelServer(port)
    try:
        up = run_zero_shot(profile, {})
        assert up.status.set_index("model")["status"].to_dict() == {"ViT-S-32/random": "available",
                                                                     "first-label": "available"}
        asked = server.requests
        assert asked == 42 + 24  # the FER evaluation draw and Emotion6's: the new model only
        new = up.predictions[up.predictions["model"] == "first-label"]
        assert len(new) == asked and set(new["subset"]) == {"fer_eval_42", "emotion6_eval_24"}
        kept = up.predictions[up.predictions["model"] != "first-label"].reset_index(drop=True)
        assert kept.equals(clip_rows)  # the stored rows of the others, untouched
        assert any("scored alone: openai:first-label" in n for n in up.notes)
        again = run_zero_shot(profile, {})
        assert server.requests == asked and again.predictions.equals(up.predictions)  # nothing left to do

        sweep_up = run_prompt_sweep(profile)
        assert sweep_up.status["status"].tolist() == ["available"]
        assert len(sweep_up.predictions) == 6 * 2  # base and persona_positive on 6 images
        assert server.requests - asked == 6  # base on Emotion6 was asked by the VLM stage: its answers are cached
        assert sweep_up.sets["status"].tolist() == ["swept"]
        assert not any("no generative VLM" in n for n in sweep_up.notes)
    finally:
        server.close()

    gone = run_zero_shot(profile, {}, force=True)  # the endpoint is down again: its rows are kept
    row = gone.status.set_index("model").loc["first-label"]
    assert row["status"] == "unavailable" and row["note"] == EARLIER
    assert (gone.predictions["model"] == "first-label").sum() == 42 + 24

"""A data set, a label set and a file of recorded answers added by editing the profile only
(issue 14): the prompt sweep (notebook 05) asks every evoked set the profile names, in its own
label set, with the generative prompt of its role; the plan names the set and the recorded
file; the cost table lists the recorded model; the built-in prompts are exactly those they
were; the sampler of notebook 07 counts the rows whose image it cannot find instead of failing.

The new set is real Emotion6 images laid out as class folders named after the labels of a
label set of the user's own (``everywhere4``: two positive, two negative labels)."""

from __future__ import annotations

import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from fake_servers import FirstLabelServer
from PIL import Image

from emolib import catalog
from emolib.config import ConfigError, configs_dir, load_profile, to_dict
from emolib.cost.counting import NOT_COUNTED, model_cost_rows
from emolib.data import load_set, load_sets, make_synthetic_faces
from emolib.data.stage import define_subsets, run_audit
from emolib.human_eval import sampling
from emolib.labels import LABEL_SETS, get_label_set
from emolib.machine import plan_machine
from emolib.predictions import make_predictions, validate_predictions
from emolib.prompts.sweep import profile_variants, run_prompt_sweep
from emolib.prompts.variants import FAMILIES, make_variants
from emolib.run.plan import profile_plan
from emolib.templates import generative_prompt, generative_prompt_name, load_templates
from emolib.vlm.backends import load_backend
from emolib.vlm.recorded_files import load_recorded_file

LABELS = "everywhere4"  # a label set of the user's own, registered by the profile
CLASSES = {"cheerful": "joy", "serene": "surprise", "gloomy": "sadness", "tense": "fear"}  # label: Emotion6 folder
LABEL_ENTRY = {LABELS: {"description": "four moods, two positive and two negative", "labels": [
    {"name": "cheerful", "sentiment": "positive", "arousal": "high"},
    {"name": "serene", "sentiment": "positive", "arousal": "low"},
    {"name": "gloomy", "sentiment": "negative", "arousal": "low"},
    {"name": "tense", "sentiment": "negative", "arousal": "high"}]}}
UNKNOWN_IDS = ("cheerful/999", "tense/x")  # recorded answers on images the set does not hold
NO_CLIP = {"vlm.clip_models": [], "vlm.clip_benchmark_models": []}  # the smoke CLIP left out (both lists)
EMOTION6_BASE = (
    "Imagine you are like a human, capable of feeling emotions, and an image is shown to you. Which emotion would "
    "this image make you feel? Classify the emotion the image evokes, choosing from the list: [anger, disgust, fear, "
    "joy, sadness, surprise]. Answer in a JSON format with a single key and one word from the list as its value, "
    'and nothing else: {"prediction": <your predicted emotion word>}')
FER7_BASE = (
    "Imagine you are like a human, capable of recognising emotions, and a photo of a face is shown to you. Which "
    "emotion does the facial expression of this person show? Classify it, choosing from the list: [angry, disgust, "
    "fear, happy, sad, surprise, neutral]. Answer in a JSON format with a single key and one word from the list as "
    'its value, and nothing else: {"prediction": <your predicted emotion word>}')


@pytest.fixture
def server():
    s = FirstLabelServer()
    yield s
    s.close()


@pytest.fixture(scope="module")
def user_files(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``moods/<label>/<n>.jpg``: 3 real Emotion6 images per label of everywhere4, and
    ``othervlm.csv``: an answer per image ("gloomy" for all, the file's y_true the folder) and
    two rows on images the set lacks."""
    root = tmp_path_factory.mktemp("everywhere")
    rows = []
    with zipfile.ZipFile(data_root / "emotion6" / "Emotion6.zip") as zf:
        for label, folder in CLASSES.items():
            for n in ("1", "2", "3"):
                (root / "moods" / label).mkdir(parents=True, exist_ok=True)
                (root / "moods" / label / f"{n}.jpg").write_bytes(zf.read(f"Emotion6/images/{folder}/{n}.jpg"))
                rows.append({"image_id": f"{label}/{n}", "raw_answer": '{"prediction": "gloomy"}', "y_true": label})
    rows += [{"image_id": i, "raw_answer": "gloomy", "y_true": i.split("/")[0]} for i in UNKNOWN_IDS]
    pd.DataFrame(rows).to_csv(root / "othervlm.csv", index=False)
    return root


def write_profile(root: Path, tmp_path: Path, **changes) -> Path:
    """``tmp_path/everywhere.yaml``: the smoke profile plus the user's label set, an evoked
    class-folders set in it, an evoked set whose folder is missing, and a recorded file."""
    raw = yaml.safe_load((configs_dir() / "smoke.yaml").read_text())
    raw["label_sets"] = [LABEL_ENTRY]
    raw["data"]["sets"] = [
        {"name": "moods", "loader": "class_folders", "path": str(root / "moods"), "label_set": LABELS,
         "role": "evoked"},
        {"name": "gone", "loader": "class_folders", "path": str(tmp_path / "nowhere"), "label_set": "emotion6",
         "role": "evoked"}]
    raw["vlm"]["recorded_files"] = [{"model": "othervlm", "set": "moods", "path": str(root / "othervlm.csv"),
                                     "label_set": LABELS}]
    for key, value in changes.items():
        section, leaf = key.split(".")
        raw[section][leaf] = value
    path = tmp_path / "everywhere.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def run_data_stage(profile) -> None:
    """Notebook 01: the audit and the named subsets of every available set."""
    data = load_sets(profile)
    define_subsets(profile, data.faces, data.evoked(), run_audit(profile, data.faces)["leakage"])


# ----------------------------------------------------------------------------- built-in prompts
def test_built_in_label_sets_keep_exactly_their_prompts():
    """The prompts (so the cache keys) of the built-in sets: the texts the study always sent,
    whatever a shipped profile says; no shipped profile chooses generative prompts, so their
    VLM settings (and stage hashes) do not carry the new key."""
    assert generative_prompt(get_label_set("emotion6")) == EMOTION6_BASE
    assert generative_prompt(get_label_set("fer7")) == FER7_BASE
    defaults = load_templates()["default_generative"]
    assert set(LABEL_SETS) <= set(defaults)  # every built-in set has its own prompt
    for name in ("smoke", "quick", "paper", "paper-vllm"):
        profile = load_profile(name, check_machine=False)
        assert profile.vlm.generative_prompts == {} and "generative_prompts" not in to_dict(profile.vlm)
        for label_set in LABEL_SETS.values():
            selection = profile.vlm.generative_prompts
            assert generative_prompt_name(label_set, selection) == defaults[label_set.name]
            assert generative_prompt(label_set, selection=selection) == generative_prompt(label_set)
    variants = make_variants(get_label_set("emotion6"), tuple(FAMILIES), 3, 0, 4)
    assert variants[0].name == "base" and variants[0].text == EMOTION6_BASE


@pytest.mark.data
def test_a_user_label_set_gets_the_prompt_of_its_role_or_the_profile_choice(user_files, tmp_path):
    profile = load_profile(write_profile(user_files, tmp_path))
    assert profile.vlm.generative_prompts == {LABELS: "evoked"}  # filled in from the role of `moods`
    mine = get_label_set(LABELS)
    evoked = load_templates()["generative"]["classification"]
    assert generative_prompt(mine, selection=profile.vlm.generative_prompts) == \
        evoked.replace("{labels}", "cheerful, serene, gloomy, tense")
    with pytest.raises(ConfigError, match=rf"label set '{LABELS}' has no default generative prompt .* "
                                          rf"vlm.generative_prompts: \{{{LABELS}: <role or prompt>\}}"):
        generative_prompt(mine)
    faces = load_profile(write_profile(user_files, tmp_path), **{"vlm.generative_prompts": {LABELS: "faces"}})
    base = make_variants(mine, ("base",), selection=faces.vlm.generative_prompts)[0]
    assert base.text.startswith("Imagine you are like a human, capable of recognising emotions, and a photo of a face")
    named = load_profile(write_profile(user_files, tmp_path),
                         **{"vlm.generative_prompts": {LABELS: "classification", "emotion6": "faces"}})
    assert generative_prompt(get_label_set("emotion6"), selection=named.vlm.generative_prompts).startswith(
        "Imagine you are like a human, capable of recognising emotions")  # a profile may choose for any set
    with pytest.raises(ConfigError, match=r"vlm.generative_prompts.everywhere4: unknown generative prompt 'shout'; "
                                          r"name a role \['evoked', 'faces'\] or a prompt"):
        load_profile(write_profile(user_files, tmp_path), **{"vlm.generative_prompts": {LABELS: "shout"}})
    with pytest.raises(ConfigError, match=r"vlm.generative_prompts: unknown label set 'nosuch'"):
        load_profile(write_profile(user_files, tmp_path), **{"vlm.generative_prompts": {"nosuch": "evoked"}})
    both = [{"name": "moods", "loader": "class_folders", "path": str(user_files / "moods"), "label_set": LABELS,
             "role": "evoked"},
            {"name": "mood_faces", "loader": "class_folders", "path": str(user_files / "moods"), "label_set": LABELS,
             "role": "faces"}]
    with pytest.raises(ConfigError, match=r"label set 'everywhere4' labels data sets of two roles .* choose it in "
                                          r"the profile, vlm.generative_prompts"):
        load_profile(write_profile(user_files, tmp_path), **{"data.sets": both})


@pytest.mark.data
def test_the_openai_backend_asks_a_user_set_with_its_role_prompt(user_files, tmp_path, server):
    """Notebook 04 asks every evoked set with the backend's own prompt (prompt None)."""
    profile = load_profile(write_profile(user_files, tmp_path), **{"vlm.openai_base_url": server.url})
    backend = load_backend("openai:first-label", profile.vlm)
    moods = load_set(profile, "moods")
    pred = validate_predictions(backend.predict(moods, moods.label_set, None, "default"))
    assert set(server.prompts) == {generative_prompt(get_label_set(LABELS), "classification")}
    assert len(server.prompts) == 12 and (pred["y_pred"] == 0).all() and set(pred["label_set"]) == {LABELS}


# ----------------------------------------------------------------------------- profile keys
@pytest.mark.data
def test_prompts_datasets_names_sets_and_is_checked_at_load(user_files, tmp_path):
    path = write_profile(user_files, tmp_path)
    assert [s.name for s in load_profile(path).prompt_sets()] == ["emotion6", "moods", "gone"]
    assert [s.name for s in load_profile(path, **{"prompts.datasets": ["moods", "faces", "evoked"]}).prompt_sets()] \
        == ["moods", "fer2013", "emotion6", "gone"]
    with pytest.raises(ConfigError, match=r"prompts.datasets: unknown data set 'mods'; use \['evoked', 'faces'\] or a "
                                          r"set of this profile \['emotion6', 'fer2013', 'gone', 'moods'\]"):
        load_profile(path, **{"prompts.datasets": ["mods"]})
    faces_set = {"name": "portraits", "loader": "class_folders", "path": str(user_files / "moods"),
                 "label_set": LABELS, "role": "faces"}
    with pytest.raises(ConfigError, match=r"prompts.datasets: 'portraits' has role 'faces'"):
        load_profile(path, **{"data.sets": [faces_set], "prompts.datasets": ["portraits"]})
    variants = profile_variants(load_profile(path, **{"prompts.variants": ["base", "order4"]}))
    assert variants.groupby("dataset", sort=False).size().to_dict() == {"emotion6": 25, "moods": 25, "gone": 25}
    mine = variants[variants["dataset"] == "moods"]
    assert set(mine["label_set"]) == {LABELS} and mine["label_order"].iloc[0] == "cheerful|serene|gloomy|tense"


# ----------------------------------------------------------------------------- notebook 05
@pytest.mark.data
def test_the_sweep_asks_every_evoked_set_and_rows_the_missing_one(user_files, tmp_path, server):
    kinds = ["base", "permuted", "order4", "persona_negative"]
    profile = load_profile(write_profile(user_files, tmp_path), **{
        "vlm.hf_models": [], "vlm.clip_models": [], "vlm.clip_benchmark_models": [],
        "vlm.openai_models": ["first-label"],
        "vlm.openai_base_url": server.url, "vlm.max_retries": 0, "prompts.variants": kinds,
        "prompts.sample_size": 8, "prompts.n_permutations": 2, "prompts.order_sample_size": 2})
    run_data_stage(profile)
    sweep = run_prompt_sweep(profile)
    pred = validate_predictions(sweep.predictions)

    sets = sweep.sets.set_index("set")
    assert sets["status"].to_dict() == {"emotion6": "swept", "moods": "swept", "gone": "not run"}
    assert sets.loc["gone", "reason"].startswith("data set unavailable") and "nowhere" in sets.loc["gone", "reason"]
    assert any(n.startswith("data set gone not swept") for n in sweep.notes)
    assert sets.loc["moods", ["subset", "n", "order_subset", "order_n"]].tolist() == \
        ["moods_sweep_8", 8, "moods_sweep_order4_2", 2]
    assert sets.loc["emotion6", "subset"] == "emotion6_sweep_8"  # the built-in set keeps its subset names
    assert sets.loc["emotion6", "order_subset"] == "emotion6_sweep_order4_2"

    mine = pred[pred["label_set"] == LABELS]
    assert set(mine["dataset"]) == {"moods"} and len(mine) == 8 * 4 + 2 * 24  # base, 2 permutations, persona; orders
    pool = set(catalog.subset_ids(profile, catalog.evoked_eval_name(profile, "moods")))
    assert set(catalog.subset_ids(profile, "moods_sweep_8")) == set(mine.loc[mine["subset"] == "moods_sweep_8",
                                                                             "image_id"]) and \
        set(catalog.subset_ids(profile, "moods_sweep_8")) <= pool
    base = mine[mine["prompt"] == "base"]
    assert (base["y_pred"] == 0).all()  # the server answers the first listed label: cheerful
    assert generative_prompt(get_label_set(LABELS), "classification") in server.prompts
    assert set(pred.loc[pred["label_set"] == "emotion6", "subset"]) == {"emotion6_sweep_8", "emotion6_sweep_order4_2"}
    assert EMOTION6_BASE in server.prompts
    asked = len(server.prompts)
    again = run_prompt_sweep(profile)  # read back: the same sets table, no call
    assert len(server.prompts) == asked and again.sets.equals(sweep.sets)


# ----------------------------------------------------------------------------- plan and cost
@pytest.mark.data
def test_the_plan_names_the_set_and_the_recorded_file(user_files, tmp_path):
    profile = load_profile(write_profile(user_files, tmp_path), **{"vlm.openai_models": ["first-label"]})
    plan = profile_plan(profile, plan_machine(profile))
    assert plan.loc[plan["stage"] == "data", "on"].item() == "fer2013, emotion6, moods, gone"
    scored = plan[(plan["stage"] == "vlm") & plan["what"].str.startswith("load ")]
    assert len(scored) and scored["on"].str.endswith("emotion6_eval_24, moods_eval_all, gone_eval_all").all()
    recorded = plan[plan["what"].str.contains("recorded:othervlm")]
    assert recorded["on"].tolist() == ["moods_othervlm"] and recorded["device"].tolist() == ["none"]
    assert recorded["what"].item() == f"score recorded:othervlm's answers on moods ({user_files / 'othervlm.csv'})"
    swept = plan.loc[plan["stage"] == "prompts", "on"]
    assert swept.str.contains("moods_sweep_12, moods_sweep_order4_2").all() and len(swept) == 2  # hf and openai


@pytest.mark.data
def test_the_cost_rows_name_the_recorded_model_uncounted(user_files, tmp_path):
    profile = load_profile(write_profile(user_files, tmp_path), **NO_CLIP, **{"cnn.models": []})
    rows = model_cost_rows(profile).set_index("model")
    assert rows.loc["othervlm", "family"] == "api"
    assert rows.loc["othervlm", "note"].startswith(f"{NOT_COUNTED}: recorded answers (vlm.recorded_files: moods)")
    twice = load_profile(write_profile(user_files, tmp_path), **NO_CLIP,
                         **{"cnn.models": [], "vlm.recorded": ["othervlm"]})
    assert model_cost_rows(twice)["model"].tolist().count("othervlm") == 1  # one row per model


def test_free_recorded_answers_get_no_label_preference(user_files, tmp_path):
    from emolib.prompts.sweep import split_ranked

    profile = load_profile(write_profile(user_files, tmp_path), **NO_CLIP, **{"cnn.models": []})
    recorded = pd.DataFrame({"model": ["othervlm"] * 3 + ["gpt4v"] * 2,
                             "subset": ["moods_othervlm"] * 3 + ["fer_private_gpt4v"] * 2,
                             "raw_response": ['{"prediction": "upbeat"}', "boredom", "", "happy, sad", "sad"]})
    ranked, left_out = split_ranked(profile, recorded)
    assert ranked["model"].tolist() == ["gpt4v", "gpt4v"]
    assert left_out.to_dict("records") == [{"model": "othervlm", "subset": "moods_othervlm", "answers": 3,
                                            "reason": "answer: raw (free answers, no ranking)"}]


# ----------------------------------------------------------------------------- notebook 07
@pytest.mark.data
def test_the_sampler_counts_rows_whose_image_it_cannot_find(user_files, tmp_path):
    """Recorded answers on ids the loaded set lacks: counted in the unmatched table, never
    sampled, never a KeyError; every sampled item shows its own image."""
    profile = load_profile(write_profile(user_files, tmp_path))
    moods = load_set(profile, "moods")
    entry = profile.vlm.recorded_files[0]
    recorded = load_recorded_file(entry.path, entry.model, "moods", get_label_set(LABELS))  # truth from the file
    predictions = recorded.predictions
    assert len(predictions) == 14 and set(UNKNOWN_IDS) <= set(predictions["image_id"])
    sample_dir = sampling.save_sample(profile, predictions, {"moods": moods})
    sample = sampling.read_sample(sample_dir)
    # "gloomy" for all: wrong on the 9 images of the other three labels, and on both unknown ids
    assert sorted(sample["image_id"]) == sorted(f"{c}/{n}" for c in ("cheerful", "serene", "tense")
                                                for n in ("1", "2", "3"))
    # per (model, category): EC I (wrong sentiment) cheerful and serene, EC II (wrong arousal) tense
    assert sample.groupby("error_category")["stratum_size"].first().to_dict() == {"EC I": 6, "EC II": 3}
    for row in sample.itertuples():
        shown = np.asarray(Image.open(sampling.image_path(sample_dir, row.item_id)))
        np.testing.assert_array_equal(shown, moods.image(moods.ids.tolist().index(row.image_id)))
    unmatched = sampling.read_unmatched(sample_dir)
    assert unmatched.to_dict("records") == [
        {"dataset": "moods", "backend": "recorded", "model": "othervlm", "reason": sampling.NOT_IN_SET,
         "rows": 2, "errors": 2, "examples": ", ".join(UNKNOWN_IDS)}]


def test_unmatched_rows_name_each_reason():
    faces = make_synthetic_faces(1, seed=0)
    ids = faces.ids.astype(object).copy()
    ids[1] = ids[0]  # two images of one split share an id: ambiguous, never the wrong image
    faces = replace(faces, ids=ids, splits=np.full(len(ids), "test", dtype=object))
    predictions = make_predictions(
        image_id=[ids[0], ids[2], "nope", "x"], split="test", dataset=[faces.name] * 3 + ["elsewhere"],
        label_set="fer7", y_true=[0, 1, 2, 3], y_pred=[1, 1, 0, 6], model="m", backend="b", restoration="none",
        prompt="p", seed=0, subset="s")
    position, reason = sampling.locate_images(predictions, {faces.name: faces})
    assert position.tolist() == [-1, 2, -1, -1]
    assert reason.tolist() == [sampling.AMBIGUOUS, "", sampling.NOT_IN_SET, sampling.NOT_LOADED]
    table = sampling.unmatched_rows(predictions, {faces.name: faces})
    assert table[["dataset", "reason", "rows", "errors", "examples"]].values.tolist() == [
        [faces.name, sampling.AMBIGUOUS, 1, 1, ids[0]], [faces.name, sampling.NOT_IN_SET, 1, 1, "nope"],
        ["elsewhere", sampling.NOT_LOADED, 1, 1, "x"]]
    assert sampling.unmatched_rows(predictions.iloc[[1]], {faces.name: faces}).empty

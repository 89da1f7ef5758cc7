"""Does the backend change the answer? ``emolib.vlm.agreement`` against figures computed by
hand, and the VLM stage with one tiny model named twice: in process (``hf``) and behind a
local OpenAI-compatible server that answers with the same in-process code (``openai``)."""

from __future__ import annotations

import math
import sqlite3
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import yaml
from fake_servers import HFChatServer
from scipy import stats
from smoke_stages import run_data
from vlm_tiny import build_tiny_vlm

from emolib.config import VLMConfig, configs_dir, load_profile
from emolib.data import image_hash, load_sets
from emolib.paths import RESULTS_ENV_VAR
from emolib.predictions import PARSE_STATUSES, make_predictions
from emolib.vlm import ModelSpec, load_backend
from emolib.vlm.agreement import COLUMNS, agreement_table
from emolib.vlm.cache import cache_path
from emolib.vlm.driver import EARLIER, keep_earlier
from emolib.vlm.eval_sets import eval_sets
from emolib.vlm.stage import ZeroShotResult, run_zero_shot
from emolib.vlm.types import AVAILABLE, UNAVAILABLE

# ----------------------------------------------------------------------------- by hand
Y_TRUE = [0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4]
HF = [0, 1, 2, 3, 4, 5, -1, 1, 1, -1, 3, 4]  # -1: no answer
OPENAI = [0, 1, 2, 3, 0, 5, -1, 1, -1, 2, 6, 1]
HF_STATUS = ["json"] * 6 + ["unparseable", "text_match", "json", "error", "json", "embedding_match"]
OPENAI_STATUS = ["json"] * 6 + ["unparseable", "json", "error", "text_match", "json", "json"]


def _rows(backend: str, y_pred: list[int], status: list[str], ids: list[str] | None = None,
          model: str = "org/vlm", restoration: str = "none", prompt: str = "default") -> pd.DataFrame:
    ids = ids or [f"img{i}" for i in range(len(y_pred))]
    return make_predictions(image_id=ids, split="private_test", dataset="fer2013", label_set="fer7",
                            y_true=Y_TRUE[:len(ids)], y_pred=y_pred, model=model, backend=backend,
                            restoration=restoration, prompt=prompt, seed=0, subset="fer_eval_12",
                            parse_status=status)


def kappa_by_hand(a: list[int], b: list[int]) -> float:
    """Cohen's kappa (p_o - p_e) / (1 - p_e) from counts; NaN when p_e == 1."""
    n = len(a)
    p_o = sum(x == y for x, y in zip(a, b, strict=True)) / n
    count_a, count_b = Counter(a), Counter(b)
    p_e = sum(count_a[k] * count_b[k] for k in count_a) / n**2
    return math.nan if p_e == 1 else (p_o - p_e) / (1 - p_e)


def mcnemar_p_by_hand(b: int, c: int) -> float:
    """Exact two-sided binomial p under 25 discordant pairs; chi-square with continuity
    correction from 25; 1 with none."""
    if b + c == 0:
        return 1.0
    if b + c < 25:
        return min(1.0, 2 * sum(math.comb(b + c, k) for k in range(min(b, c) + 1)) / 2 ** (b + c))
    return float(stats.chi2.sf((abs(b - c) - 1) ** 2 / (b + c), 1))


def test_figures_of_one_pair_match_the_hand_computation() -> None:
    table = agreement_table(pd.concat([_rows("hf", HF, HF_STATUS), _rows("openai", OPENAI, OPENAI_STATUS)]))
    assert list(table.columns) == list(COLUMNS) and len(table) == 1
    row = table.iloc[0]
    assert (row["model"], row["backend_a"], row["backend_b"], row["n"]) == ("org/vlm", "hf", "openai", 12)
    # identical: images 0-3, 5, 6 (both no answer), 7 -> 7 of 12
    assert row["share_identical"] == pytest.approx(7 / 12)
    # kappa: p_o = 7/12; answers per category (-1 = no answer) counted off HF and OPENAI above
    hf_counts = {-1: 2, 0: 1, 1: 3, 2: 1, 3: 2, 4: 2, 5: 1, 6: 0}
    openai_counts = {-1: 2, 0: 2, 1: 3, 2: 2, 3: 1, 4: 0, 5: 1, 6: 1}
    assert hf_counts == {k: HF.count(k) for k in hf_counts} and openai_counts == {k: OPENAI.count(k) for k in hf_counts}
    # p_e = (2*2 + 1*2 + 3*3 + 1*2 + 2*1 + 2*0 + 1*1 + 0*1) / 12**2 = 20/144
    assert row["kappa"] == pytest.approx((7 / 12 - 20 / 144) / (1 - 20 / 144))  # = 64/124
    assert row["kappa"] == pytest.approx(kappa_by_hand(HF, OPENAI))
    # right: hf 0-5, 8, 10, 11 (9 of 12); openai 0-3, 5, 9 (6 of 12)
    assert (row["accuracy_a"], row["accuracy_b"]) == (pytest.approx(9 / 12), pytest.approx(6 / 12))
    # b: hf right, openai wrong on 4, 8, 10, 11; c: openai right, hf wrong on 9
    assert (row["b"], row["c"]) == (4, 1)
    assert row["p"] == pytest.approx(2 * (1 + 5) / 32)  # exact: 2 * P(X <= 1), X ~ Bin(5, 1/2)
    assert row["p"] == pytest.approx(mcnemar_p_by_hand(4, 1))
    mix_a = {"json": 8 / 12, "text_match": 1 / 12, "embedding_match": 1 / 12, "unparseable": 1 / 12, "error": 1 / 12}
    mix_b = {"json": 9 / 12, "text_match": 1 / 12, "unparseable": 1 / 12, "error": 1 / 12}
    for status in PARSE_STATUSES:
        assert row[f"share_{status}_a"] == pytest.approx(mix_a.get(status, 0.0))
        assert row[f"share_{status}_b"] == pytest.approx(mix_b.get(status, 0.0))


def test_every_pair_of_backends_and_each_configuration_gets_its_row() -> None:
    shuffled = _rows("openai", OPENAI, OPENAI_STATUS).sample(frac=1, random_state=0)  # order must not matter
    frames = [_rows("hf", HF, HF_STATUS), shuffled, _rows("recorded", HF, HF_STATUS),
              _rows("hf", HF, HF_STATUS, restoration="bicubic-64"),
              _rows("openai", HF, HF_STATUS, restoration="bicubic-64"),
              _rows("hf", HF, HF_STATUS, model="other/vlm")]  # one backend only: no row
    table = agreement_table(pd.concat(frames, ignore_index=True))
    got = {(r.backend_a, r.backend_b, r.restoration): r for r in table.itertuples()}
    assert set(got) == {("hf", "openai", "none"), ("hf", "recorded", "none"), ("openai", "recorded", "none"),
                        ("hf", "openai", "bicubic-64")}
    assert set(table["model"]) == {"org/vlm"}
    assert got[("hf", "openai", "none")].kappa == pytest.approx(kappa_by_hand(HF, OPENAI))
    assert got[("openai", "recorded", "none")].kappa == pytest.approx(kappa_by_hand(OPENAI, HF))
    same = got[("hf", "recorded", "none")]
    assert (same.share_identical, same.kappa, same.b, same.c, same.p) == (1.0, pytest.approx(1.0), 0, 0, 1.0)


def test_kappa_is_nan_when_both_give_one_and_the_same_answer_throughout() -> None:
    constant = [3] * 12
    table = agreement_table(pd.concat([_rows("hf", constant, ["json"] * 12),
                                       _rows("openai", constant, ["json"] * 12)]))
    assert np.isnan(table["kappa"].item()) and np.isnan(kappa_by_hand(constant, constant))
    assert table["share_identical"].item() == 1.0 and table["accuracy_a"].item() == pytest.approx(2 / 12)


def test_a_pair_not_on_the_same_ids_is_an_error_naming_it() -> None:
    ids = [f"img{i}" for i in range(12)]
    other = [*ids[:11], "elsewhere"]
    with pytest.raises(ValueError, match=r"org/vlm.*openai is not on the ids of backend hf: 1 id\(s\) of the subset "
                                         r"missing, e\.g\. \['img11'\]; 1 id\(s\) outside the subset"):
        agreement_table(pd.concat([_rows("hf", HF, HF_STATUS, ids), _rows("openai", OPENAI, OPENAI_STATUS, other)]))
    twice = _rows("hf", HF, HF_STATUS).assign(image_id=[*ids[:11], "img0"])  # a table no stage would write
    with pytest.raises(ValueError, match=r"backend hf answered 1 id\(s\) twice, e\.g\. \['img0'\]"):
        agreement_table(pd.concat([twice, _rows("openai", OPENAI, OPENAI_STATUS)]))


def test_no_model_with_two_backends_gives_an_empty_table_with_the_columns() -> None:
    clip = _rows("clip", [max(y, 0) for y in HF], ["scored"] * 12)
    probe = clip.assign(backend="clip_probe", prompt="-")  # same name as its CLIP model, never the same prompt
    for predictions in (_rows("hf", HF, HF_STATUS), pd.concat([clip, probe], ignore_index=True)):
        table = agreement_table(predictions)
        assert table.empty and list(table.columns) == list(COLUMNS)


def test_keep_earlier_keys_models_by_backend_and_name() -> None:
    """One name through two backends: the one gone keeps its own earlier rows, the other's fresh
    rows are not doubled, and an unavailable backend that never answered gets no 'kept' note."""
    previous = pd.concat([_rows("hf", HF, HF_STATUS, model="X"), _rows("openai", OPENAI, OPENAI_STATUS, model="X"),
                          _rows("hf", HF, HF_STATUS, model="Y"), _rows("openai", HF, HF_STATUS, model="Z")],
                         ignore_index=True)
    now = _rows("hf", OPENAI, OPENAI_STATUS, model="X")  # hf:X answered again today
    status = pd.DataFrame([("hf", "X", AVAILABLE), ("openai", "X", UNAVAILABLE), ("hf", "Y", UNAVAILABLE),
                           ("hf", "Z", UNAVAILABLE), ("openai", "Z", AVAILABLE)],
                          columns=["backend", "model", "status"]).assign(reason="", note="")
    predictions, status = keep_earlier(previous, now, status)
    kept = predictions.groupby(["backend", "model"]).size().to_dict()
    assert kept == {("hf", "X"): 12, ("openai", "X"): 12, ("hf", "Y"): 12}
    hf_x = predictions[(predictions["backend"] == "hf") & (predictions["model"] == "X")]
    assert list(hf_x["y_pred"]) == OPENAI  # today's answers, not the earlier ones
    assert list(status["note"]) == ["", EARLIER, EARLIER, "", ""]  # hf:Z never answered: nothing kept


def test_a_repo_named_in_process_and_at_an_endpoint_is_planned_and_fetched_for_both(tmp_path) -> None:
    """``emolib plan`` and ``emolib fetch`` treat hf:<repo> as run here even when an endpoint
    serves the same repo (the backend comparison needs its weights on this machine too)."""
    from emolib.machine import assume_gpu, plan_machine, read_machine
    from emolib.run.cli import resolve_targets
    from emolib.run.plan import not_in_process, profile_plan

    repo = "llava-hf/llava-1.5-7b-hf"
    raw = yaml.safe_load((configs_dir() / "paper.yaml").read_text())
    raw["vlm"]["endpoints"] = [{"model": repo, "base_url": "http://127.0.0.1:8001/v1"}]
    (tmp_path / "both.yaml").write_text(yaml.safe_dump(raw))
    profile = load_profile(tmp_path / "both.yaml", check_machine=False)
    assert repo in profile.vlm.hf_models and repo in profile.vlm.openai_models
    assert not_in_process(profile, ModelSpec("hf", repo)) == ""
    plan = profile_plan(profile, plan_machine(profile, assume_gpu(read_machine())))
    loads = set(plan.loc[plan["stage"] == "vlm", "what"])
    assert {f"load hf:{repo}, predict, free", f"load openai:{repo}, predict, free"} <= loads
    weights, _, skipped = resolve_targets([str(tmp_path / "both.yaml")])
    assert ("hf", repo) in {(w.kind, w.repo) for w in weights} and not [k for k in skipped if repo in k[1]]


# ----------------------------------------------------------------------------- end to end
N_FACES, N_EVOKED = 42, 24  # smoke: data.eval_size, data.emotion6_eval_size


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    """A tiny LLaVA-NeXT whose answers depend on the image (seed 1: a few labels on the smoke
    faces, and many answers change when the image is inverted; asserted below)."""
    return str(build_tiny_vlm("llava_next", tmp_path_factory.mktemp("tiny_llava_next"), seed=1))


@pytest.fixture(scope="module")
def profile_for(tiny, tmp_path_factory):
    """Profile ``agreement`` (the smoke profile with its own vlm section): ``tiny`` in process
    (``hf``) and at the server ``url`` (``openai``, PNG images: lossless)."""
    folder = tmp_path_factory.mktemp("profiles")
    raw = yaml.safe_load((configs_dir() / "smoke.yaml").read_text())

    def make(url: str):
        raw["vlm"] = {"clip_models": [], "hf_models": [tiny], "recorded": [], "batch_size": 16, "max_new_tokens": 8,
                      "torch_threads": 1, "endpoints": [{"model": tiny, "base_url": url, "image_format": "png"}]}
        (folder / "agreement.yaml").write_text(yaml.safe_dump(raw))
        return load_profile(folder / "agreement.yaml")

    return make


@pytest.fixture(scope="module")
def serve(tiny):
    """Start an ``HFChatServer`` of ``tiny`` (``alter``: what it does to each image first)."""
    servers = []

    def start(alter=None) -> HFChatServer:
        servers.append(HFChatServer(load_backend(ModelSpec("hf", tiny), VLMConfig()), alter))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _stage(profile, force: bool = False) -> ZeroShotResult:
    run_data(profile)  # notebook 01's subsets (read back once stored)
    return run_zero_shot(profile, {}, force=force)


def _answers(result: ZeroShotResult) -> pd.DataFrame:
    """hf and openai answers side by side, one row per image and data set."""
    columns = ["image_id", "dataset", "y_true", "y_pred", "parse_status", "raw_response"]
    side = {b: g[columns] for b, g in result.predictions.groupby("backend")}
    return side["hf"].merge(side["openai"], on=["image_id", "dataset", "y_true"], how="outer",
                            suffixes=("_hf", "_openai"), validate="one_to_one")


def _hashes(images) -> list[str]:
    return sorted(image_hash(np.asarray(im)) for im in images)


def _eval_images(profile) -> list[np.ndarray]:
    sets, _ = eval_sets(profile, {}, load_sets(profile))
    return [im for image_set in sets for im in image_set.images()]


def test_the_same_model_through_a_faithful_server_answers_identically(tiny, profile_for, serve, tmp_path,
                                                                     monkeypatch) -> None:
    monkeypatch.setenv(RESULTS_ENV_VAR, str(tmp_path))  # a response cache of its own, counted below
    server = serve()
    profile = profile_for(server.url)
    result = _stage(profile)
    assert result.status[["backend", "model", "status"]].values.tolist() == [["hf", tiny, AVAILABLE],
                                                                            ["openai", tiny, AVAILABLE]]
    assert result.store.read_meta()["unavailable"] == []
    counts = result.predictions.groupby("backend").size().to_dict()
    assert counts == {"hf": N_FACES + N_EVOKED, "openai": N_FACES + N_EVOKED}
    # every openai answer came from the server (none read from hf's cache rows), on the very pixels
    assert len(server.images) == N_FACES + N_EVOKED
    assert _hashes(server.images) == _hashes(_eval_images(profile))
    both = _answers(result)
    assert both["raw_response_hf"].notna().all() and (both["raw_response_hf"] == both["raw_response_openai"]).all()
    assert both.groupby("dataset")["y_pred_hf"].nunique().min() > 1  # the answer depends on the image
    with sqlite3.connect(cache_path(profile.name)) as db:  # one cached answer per backend and image
        cached = dict(db.execute("SELECT backend, COUNT(*) FROM responses WHERE model = ? GROUP BY backend", (tiny,)))
    assert cached == {"hf": N_FACES + N_EVOKED, "openai": N_FACES + N_EVOKED}

    table = agreement_table(result.predictions)
    assert sorted(table["n"]) == [N_EVOKED, N_FACES] and set(table["model"]) == {tiny}
    assert (table["backend_a"] == "hf").all() and (table["backend_b"] == "openai").all()
    assert (table["share_identical"] == 1.0).all() and list(table["kappa"]) == pytest.approx([1.0, 1.0])
    assert (table["b"] == 0).all() and (table["c"] == 0).all() and (table["p"] == 1.0).all()
    assert (table["accuracy_a"] == table["accuracy_b"]).all()
    for status in PARSE_STATUSES:
        assert (table[f"share_{status}_a"] == table[f"share_{status}_b"]).all()


def test_a_server_that_alters_the_images_gives_the_figures_computed_by_hand(profile_for, serve) -> None:
    server = serve(alter=lambda image: 255 - image)  # inverted pixels
    profile = profile_for(server.url)
    result = _stage(profile)
    assert _hashes(server.images) == _hashes(255 - im for im in _eval_images(profile))
    both = _answers(result)
    assert (both["y_pred_hf"] != both["y_pred_openai"]).sum() >= 5  # the alteration shows in the answers
    table = agreement_table(result.predictions).set_index("dataset")
    assert len(table) == 2
    for dataset, g in both.groupby("dataset"):
        a, b, truth = list(g["y_pred_hf"]), list(g["y_pred_openai"]), list(g["y_true"])
        right_a = [x == t for x, t in zip(a, truth, strict=True)]
        right_b = [x == t for x, t in zip(b, truth, strict=True)]
        n_b = sum(ra and not rb for ra, rb in zip(right_a, right_b, strict=True))
        n_c = sum(rb and not ra for ra, rb in zip(right_a, right_b, strict=True))
        row = table.loc[dataset]
        assert row["n"] == len(a)
        assert row["share_identical"] == pytest.approx(sum(x == y for x, y in zip(a, b, strict=True)) / len(a))
        assert row["kappa"] == pytest.approx(kappa_by_hand(a, b), nan_ok=True)
        assert (row["accuracy_a"], row["accuracy_b"]) == (pytest.approx(sum(right_a) / len(a)),
                                                          pytest.approx(sum(right_b) / len(b)))
        assert (row["b"], row["c"]) == (n_b, n_c)
        assert row["p"] == pytest.approx(mcnemar_p_by_hand(n_b, n_c))
        for status in PARSE_STATUSES:
            assert row[f"share_{status}_a"] == pytest.approx(list(g["parse_status_hf"]).count(status) / len(a))
            assert row[f"share_{status}_b"] == pytest.approx(list(g["parse_status_openai"]).count(status) / len(b))
    assert (table["share_identical"] < 1).any()


def test_a_backend_that_goes_and_comes_back_keeps_its_own_rows_only(tiny, profile_for, serve) -> None:
    """openai:<tiny> unavailable on a rerun keeps its earlier rows beside hf:<tiny>'s fresh ones
    (never doubled); when it is served again it is scored alone, replacing them."""
    server = serve()
    profile = profile_for(server.url)
    first = _stage(profile)
    server.serving = False
    gone = _stage(profile, force=True)
    status = gone.status.set_index("backend")
    assert status.loc["hf", "status"] == AVAILABLE and status.loc["hf", "note"] == ""
    assert status.loc["openai", "status"] == UNAVAILABLE and status.loc["openai", "note"].startswith(EARLIER)
    assert gone.store.read_meta()["unavailable"] == [f"openai:{tiny}"]
    same = ["image_id", "dataset", "backend", "y_pred", "raw_response", "parse_status"]
    pd.testing.assert_frame_equal(gone.predictions[same], first.predictions[same])  # hf redone, openai kept
    server.serving = True
    back = _stage(profile)
    assert list(back.status["status"]) == [AVAILABLE, AVAILABLE]
    assert back.predictions.groupby("backend").size().to_dict() == {"hf": N_FACES + N_EVOKED,
                                                                   "openai": N_FACES + N_EVOKED}
    assert any(f"openai:{tiny}" in note and "became available" in note for note in back.notes)
    assert (agreement_table(back.predictions)["share_identical"] == 1.0).all()

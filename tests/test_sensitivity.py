"""Sensitivity analysis on synthetic predictions with planted effects, and against
statsmodels / scikit-learn / direct computation."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from emolib.labels import get_label_set
from emolib.metrics import classification_scores
from emolib.predictions import make_predictions
from emolib.prompts import analysis as sens
from emolib.prompts.analysis import (
    compare_to_base,
    fine_grained_rate,
    first_position_test,
    kappa_matrix,
    position_bias,
    prediction_distribution,
    ranking_preference,
    sentiment_table,
    variant_scores,
)
from emolib.prompts.variants import make_variants
from emolib.stats import bootstrap_ci, bootstrap_mean_ci, holm, mcnemar_test

LS = get_label_set("emotion6")


def simulate(variants, n: int = 120, seed: int = 0, acc: float = 0.5, first_bias: float = 0.0,
             persona_shift: float = 0.0, ls=LS, dataset: str = "emotion6") -> pd.DataFrame:
    """A noisy model answering every variant (independent noise per variant): right with
    probability ``acc``, else a random label; ``first_bias``: probability of answering the first
    listed label instead; ``persona_shift``: under persona_positive (negative), probability of
    answering a random positive (negative) label instead."""
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, len(ls), n)
    positive = [i for i in range(len(ls)) if ls.sentiment(i) == "positive"]
    frames = []
    for v in variants:
        y = np.where(rng.random(n) < acc, y_true, rng.integers(0, len(ls), n))
        if v.label_order:
            y = np.where(rng.random(n) < first_bias, ls.names.index(v.label_order[0]), y)
        if v.name in ("persona_positive", "persona_negative"):
            pool = positive if v.name == "persona_positive" else [i for i in range(len(ls)) if i not in positive]
            y = np.where(rng.random(n) < persona_shift, rng.choice(pool, n), y)
        frames.append(make_predictions(
            image_id=[f"im{i}" for i in range(n)], split="test", dataset=dataset, label_set=ls.name,
            y_true=y_true, y_pred=y, model="sim", backend="hf", restoration="none", prompt=v.name,
            seed=0, subset=f"{dataset}_sim_{n}"))
    return pd.concat(frames, ignore_index=True)


def orders_of(variants, prefix: str) -> dict[str, tuple[str, ...]]:
    return {v.name: v.label_order for v in variants if v.name.startswith(prefix)}


@pytest.mark.parametrize("b,c", [(0, 0), (3, 9), (5, 5), (12, 30), (40, 22)])
def test_mcnemar_matches_statsmodels_and_hand(b, c):
    stat, p = mcnemar_test(b, c)
    if b + c == 0:
        assert (stat, p) == (0.0, 1.0)
        return
    ref = mcnemar([[7, b], [c, 11]], exact=b + c < 25, correction=True)
    assert p == pytest.approx(ref.pvalue) and stat == pytest.approx(ref.statistic)
    if b + c < 25:
        hand = min(1.0, 2 * stats.binom.cdf(min(b, c), b + c, 0.5))
    else:
        hand = stats.chi2.sf((abs(b - c) - 1) ** 2 / (b + c), 1)
    assert p == pytest.approx(hand)


def test_holm_by_hand():
    p = np.array([0.01, 0.04, 0.03, 0.5])
    reject, adjusted = holm(p, 0.05)
    # sorted 0.01, 0.03, 0.04, 0.5 times 4, 3, 2, 1 -> 0.04, 0.09, 0.08, 0.5; running maximum
    assert adjusted == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert reject.tolist() == [True, False, False, False]
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.random(rng.integers(1, 12)) ** 3
        ref_reject, ref_adjusted, _, _ = multipletests(q, alpha=0.05, method="holm")
        got_reject, got_adjusted = holm(q, 0.05)
        assert got_adjusted == pytest.approx(ref_adjusted) and (got_reject == ref_reject).all()


def test_compare_to_base_counts_and_bootstrap():
    variants = make_variants(LS, ("base", "explain"))
    pred = simulate(variants, n=80, seed=1)
    table = compare_to_base(pred)
    base = pred[pred.prompt == "base"].set_index("image_id")
    var = pred[pred.prompt == "explain"].set_index("image_id").loc[base.index]
    ra, rb = base.y_pred == base.y_true, var.y_pred == var.y_true
    row = table.iloc[0]
    assert (row.b, row.c) == ((ra & ~rb).sum(), (~ra & rb).sum())
    assert row.delta_acc == pytest.approx(rb.mean() - ra.mean())
    assert row.p == pytest.approx(mcnemar_test(row.b, row.c)[1]) and row.p_holm == pytest.approx(row.p)
    scores = variant_scores(pred, n_boot=200, seed=4).set_index("prompt")
    score = partial(classification_scores, n_classes=len(LS))
    ci = bootstrap_ci(base.y_true.to_numpy(), base.y_pred.to_numpy(), score, n_boot=200, seed=4)
    got = (scores.loc["base", "weighted_f1_lo"], scores.loc["base", "weighted_f1_hi"])
    assert got == pytest.approx(ci["weighted_f1"])
    values = np.arange(10.0)
    rng = np.random.default_rng(0)
    means = values[rng.integers(0, 10, (500, 10))].mean(axis=1)
    assert bootstrap_mean_ci(values, 500, seed=0) == pytest.approx((np.percentile(means, 2.5),
                                                                    np.percentile(means, 97.5)))


def test_position_bias_detects_first_label_favouring():
    variants = make_variants(LS, ("permuted", "order4"), n_permutations=12, seed=0)
    pred = simulate(variants, n=100, seed=2, acc=0.3, first_bias=0.35)
    curve = position_bias(pred, orders_of(variants, "permuted_"))
    assert curve.loc[curve.position == 1, "bias"].item() > 0.2
    assert (curve.loc[curve.position > 1, "bias"] < 0).all()
    test = first_position_test(pred, orders_of(variants, "order4_"))
    assert test.excess.item() > 0.2 and test.p.item() < 1e-6
    null = simulate(variants, n=100, seed=2, acc=0.3, first_bias=0.0)
    curve0 = position_bias(null, orders_of(variants, "permuted_"))
    assert curve0.bias.abs().max() < 0.06
    assert curve0.pred_rate.sum() == pytest.approx(1.0) and curve0.true_rate.sum() == pytest.approx(1.0)


def test_persona_sentiment_shift_has_the_right_sign():
    variants = make_variants(LS, ("base", "persona_positive", "persona_negative", "persona_neutral"))
    pred = simulate(variants, n=200, seed=3, persona_shift=0.4)
    table = sentiment_table(pred, n_boot=200).set_index("prompt")
    assert table.loc["persona_positive", "shift"] > 0.2 and table.loc["persona_positive", "shift_significant"]
    assert table.loc["persona_negative", "shift"] < -0.1 and table.loc["persona_negative", "shift_significant"]
    assert not table.loc["persona_neutral", "shift_significant"]
    assert table.loc["persona_positive", "sentiment_bias"] > table.loc["base", "sentiment_bias"]
    lo, hi = table.loc["persona_positive", ["bias_lo", "bias_hi"]]
    assert lo < table.loc["persona_positive", "sentiment_bias"] < hi


def test_no_planted_effect_false_positive_rate_at_most_alpha():
    variants = make_variants(LS, ("base", "positive_first", "persona_positive", "explain", "no_labels"))
    alpha, seeds, hits, shift_hits = 0.05, 100, 0, 0
    for seed in range(seeds):
        pred = simulate(variants, n=60, seed=100 + seed, acc=0.5)
        hits += bool(compare_to_base(pred, alpha=alpha).significant.any())
        shift_hits += bool(sentiment_table(pred, n_boot=2, alpha=alpha)["shift_significant"].fillna(False).any())
    assert hits / seeds <= alpha + 0.03 and shift_hits / seeds <= alpha + 0.03


def test_kappa_distribution_fine_grained_and_rankings():
    variants = make_variants(LS, ("base", "explain", "no_labels"))
    pred = simulate(variants, n=50, seed=5)
    kappa = kappa_matrix(pred)
    a = pred[pred.prompt == "base"].y_pred.to_numpy()
    b = pred[pred.prompt == "explain"].y_pred.to_numpy()
    assert kappa.loc["base", "explain"] == pytest.approx(cohen_kappa_score(a, b))
    assert kappa.loc["base", "base"] == 1.0
    dist = prediction_distribution(pred, LS)
    assert dist.sum(axis=1).to_numpy() == pytest.approx(np.ones(3))
    answers = ['{"prediction": "nostalgia"}', '{"prediction": "Happy"}', "Serenity.", "", None, "positive"]
    rate = fine_grained_rate(answers, frozenset({"happy", "positive"}))
    assert rate == {"n": 6, "n_answered": 4, "fine_grained_rate": 2 / 6, "rate_answered": 0.5}
    mik = get_label_set("mikels8")
    ranks = ["awe,fear,anger", "awe,contentment", "sadness,awe"]
    pref = ranking_preference(ranks, np.array([6, 1, 7]), mik).set_index("label")
    assert pref.loc["awe", "top1_share"] == pytest.approx(2 / 3)
    assert pref.loc["awe", "over_prediction"] == pytest.approx(1 / 3)
    # awe's rank on the images whose truth is not awe: 1 and 2
    assert pref.loc["awe", "rank_when_wrong"] == pytest.approx(1.5)
    # disgust is unlisted everywhere: mean of the remaining ranks
    assert pref.loc["disgust", "rank_when_wrong"] == pytest.approx(np.mean([np.mean(range(4, 9)), np.mean(range(3, 9)),
                                                                              np.mean(range(3, 9))]))


def test_one_model_through_two_backends_gets_its_own_distribution_and_kappa_per_backend():
    from emolib.prompts.variants import variants_table

    variants = make_variants(LS, ("base", "explain"))
    in_process = simulate(variants, n=40, seed=1)
    served = simulate(variants, n=40, seed=2).assign(backend="openai")
    analysis = sens.analyse_sweep(pd.concat([in_process, served], ignore_index=True), variants_table(variants),
                                  frozenset(), n_boot=20)
    assert set(analysis.kappa) == {("hf:sim", "emotion6"), ("openai:sim", "emotion6")}
    for backend, rows in (("hf", in_process), ("openai", served)):
        a, b = (rows[rows.prompt == p].y_pred.to_numpy() for p in ("base", "explain"))
        assert analysis.kappa[(f"{backend}:sim", "emotion6")].loc["base", "explain"] == pytest.approx(
            cohen_kappa_score(a, b))
        pd.testing.assert_frame_equal(analysis.distributions[(f"{backend}:sim", "emotion6")],
                                      prediction_distribution(rows, LS))
    alone = sens.analyse_sweep(in_process, variants_table(variants), frozenset(), n_boot=20)
    assert set(alone.kappa) == {("sim", "emotion6")}  # one backend: named by the model alone, as before


def test_significance_table_and_whole_analysis_find_the_planted_effects():
    from emolib.prompts.variants import variants_table

    variants = make_variants(LS, ("base", "permuted", "order4", "persona_positive", "persona_neutral", "explain"),
                             n_permutations=6, seed=0)
    pred = simulate(variants, n=150, seed=9, acc=0.4, first_bias=0.3, persona_shift=0.5)
    analysis = sens.analyse_sweep(pred, variants_table(variants), frozenset(), n_boot=50,
                                  notes={"sim": "simulated — measures nothing"})
    sig = analysis.significance
    first = sig[sig.test.str.startswith("first")]
    assert first.significant.item() and first.effect.item() > 0.2
    shift = sig[(sig.test.str.startswith("positive")) & (sig.prompt == "persona_positive")]
    assert shift.significant.item() and shift.effect.item() > 0
    assert set(sig.note) == {"simulated — measures nothing"}
    # Holm within the family: adjusted p >= raw p, and the smallest is multiplied by the family size
    assert (sig.p_holm >= sig.p - 1e-12).all()
    assert sig.p_holm.min() == pytest.approx(min(1.0, sig.p.min() * len(sig)))
    assert set(analysis.curves.design) == {"random permutations (all labels)", "all 24 orders of 4 labels"}
    assert "order4" not in " ".join(analysis.scores.prompt)  # the 4-label sample is not scored against base
    empty = sens.analyse_sweep(pred.iloc[:0], variants_table(variants), frozenset())
    assert empty.scores.empty and empty.curves.empty and empty.significance.empty


@pytest.mark.data
def test_recorded_gpt4v_sentiment_bias_by_hand(data_root):
    from emolib.vlm.recorded import load_recorded_evoked, recorded_predictions, sentiment_frame

    raw = pd.read_csv(data_root / "recorded" / "gpt4v" / "abstract_predictions.csv")
    mik = get_label_set("mikels8")
    top1 = raw.gpt4v.str.split(",").str[0]
    pos_pred = np.array([mik.sentiment(w) == "positive" for w in top1])
    pos_true = (raw["gt"] == "positive").to_numpy()
    recorded = load_recorded_evoked("abstract")
    sentiment = sentiment_frame(recorded, recorded_predictions(recorded))
    table = sens.recorded_sentiment(sentiment.assign(dataset="abstract", model="gpt4v", subset="abstract_gpt4v"),
                                    n_boot=100)
    row = table.iloc[0]
    labels = pd.read_csv(data_root / "recorded" / "gpt4v" / "abstract_labels.csv")
    kept = raw["name"].isin(labels["name"]).to_numpy()
    assert row.n == kept.sum() and row.n_no_answer == 0
    assert row.sentiment_bias == pytest.approx(pos_pred[kept].mean() - pos_true[kept].mean())
    assert row.bias_lo < row.sentiment_bias < row.bias_hi


def test_position_test_false_positive_rate_at_most_alpha():
    variants = make_variants(LS, ("order4",), seed=0)
    orders = orders_of(variants, "order4_")
    p = [first_position_test(simulate(variants, n=30, seed=500 + s, acc=0.4), orders).p.item() for s in range(100)]
    assert np.mean(np.array(p) < 0.05) <= 0.05 + 0.03


def test_orders_are_looked_up_per_label_set():
    from emolib.prompts.variants import variants_table

    frames, tables = [], []
    for name, dataset in (("emotion6", "evoked"), ("fer7", "faces")):
        ls = get_label_set(name)
        variants = make_variants(ls, ("permuted", "order4"), n_permutations=8, seed=0)
        frames.append(simulate(variants, n=80, seed=11, acc=0.3, first_bias=0.4, ls=ls, dataset=dataset))
        tables.append(variants_table(variants).assign(label_set=name))
    analysis = sens.analyse_sweep(pd.concat(frames, ignore_index=True), pd.concat(tables), frozenset(), n_boot=20)
    first = analysis.curves[analysis.curves.position == 1]
    assert len(first) == 4 and (first.bias > 0.25).all()  # 2 data sets x 2 designs
    assert analysis.curves.groupby(["dataset", "design"]).position.max().to_dict() == {
        ("evoked", "all 24 orders of 4 labels"): 4, ("evoked", "random permutations (all labels)"): 6,
        ("faces", "all 24 orders of 4 labels"): 4, ("faces", "random permutations (all labels)"): 7}
    assert analysis.significance.groupby("dataset").significant.any().all()


def free_and_constrained(model: str, free: list[tuple[int, str]], constrained: list[tuple[int, str]] | None):
    """Predictions of ``model`` on 6 Emotion6 images (truth 0..5): ``base`` and, when given,
    ``constrained_json``, each a list of (y_pred, parse_status)."""
    frames = []
    for prompt, answers in (("base", free), ("constrained_json", constrained)):
        if answers is None:
            continue
        frames.append(make_predictions(
            image_id=[f"im{i}" for i in range(6)], split="test", dataset="emotion6", label_set=LS.name,
            y_true=np.arange(6), y_pred=[a for a, _ in answers], model=model, backend="openai", restoration="none",
            prompt=prompt, seed=0, subset="emotion6_sim_6", parse_status=[s for _, s in answers]))
    return frames


def test_free_vs_constrained_by_hand_leaving_out_failed_calls():
    from emolib.prompts.figures import plot_free_vs_constrained
    from emolib.prompts.variants import variants_table

    free = [(0, "json"), (-1, "unparseable"), (2, "embedding_match"), (3, "json"), (-1, "error"), (5, "text_match")]
    constrained = [(0, "json"), (1, "json"), (-1, "unparseable"), (3, "json"), (4, "json"), (5, "json")]
    pred = pd.concat(free_and_constrained("a", free, constrained) + free_and_constrained("b", free, None),
                     ignore_index=True)
    table = sens.compare_constrained(pred)
    assert len(table) == 1  # model b has no constrained answers: no row
    row = table.iloc[0]
    assert (row.model, row.prompt, row.n, row.n_error) == ("a", "constrained_json", 5, 1)  # image 4 failed
    # images 0 1 2 3 5: free 0 - 2 3 5, constrained 0 1 - 3 5
    assert row.accuracy_free == pytest.approx(4 / 5) and row.accuracy_constrained == pytest.approx(4 / 5)
    assert row.weighted_f1_free == pytest.approx(4 / 5) and row.weighted_f1_constrained == pytest.approx(4 / 5)
    assert row.changed == pytest.approx(2 / 5)  # images 1 and 2
    assert row.free_off_label == pytest.approx(2 / 5)  # unparseable (1) and an off-label word mapped (2)
    assert row.rescued == pytest.approx(1 / 2)  # image 1 became a label, image 2 did not
    assert row.kappa == pytest.approx(11 / 21)  # p_o = 3/5, p_e = 4/25
    assert row.kappa == pytest.approx(cohen_kappa_score([0, -1, 2, 3, 5], [0, 1, -1, 3, 5]))
    all_named = sens.compare_constrained(pd.concat(free_and_constrained("a", [(i, "json") for i in range(6)],
                                                                       constrained), ignore_index=True))
    assert np.isnan(all_named.rescued.item()) and all_named.free_off_label.item() == 0  # nothing to rescue

    variants = variants_table(make_variants(LS, ("base", "constrained_json")))
    analysis = sens.analyse_sweep(pred, variants, frozenset(), n_boot=10, notes={"a": "simulated"})
    assert analysis.constrained.drop(columns="note").equals(table) and list(analysis.constrained.note) == ["simulated"]
    fig = plot_free_vs_constrained(analysis.constrained)
    assert len(fig.axes[0].get_yticklabels()) == 1 and "simulated" in fig.axes[0].get_yticklabels()[0].get_text()
    assert sens.analyse_sweep(pred[pred.prompt == "base"], variants, frozenset(), n_boot=10).constrained.empty


def test_constrained_status_says_what_was_measured_or_how_to_enable_it():
    from emolib.prompts.sweep import NO_CONSTRAINT, NOT_RUN_COLUMNS

    empty, none_refused = pd.DataFrame(columns=sens.CONSTRAINED_COLUMNS), pd.DataFrame(columns=NOT_RUN_COLUMNS)
    line = sens.constrained_status(empty, none_refused, ("base", "permuted"))
    assert line.startswith("Free vs constrained answers: not measured here (the profile's `prompts.variants` has no")
    assert "`vlm.endpoints`" in line and "`constrained_choice`" in line and "\n" not in line
    refused = pd.DataFrame([{"backend": "hf", "model": "tiny", "dataset": "emotion6", "subset": "s",
                             "prompt": "constrained_choice", "guided": "choice", "reason": NO_CONSTRAINT["hf"]}])
    line = sens.constrained_status(empty, refused, ("base", "constrained_choice"))
    assert f"no model here can decode constrained (`tiny`: {NO_CONSTRAINT['hf']})" in line
    free = [(0, "json")] * 6
    table = sens.compare_constrained(pd.concat(free_and_constrained("a", free, free), ignore_index=True))
    assert sens.constrained_status(table, refused, ("constrained_choice",)) == (
        f"Free vs constrained answers measured for `a`. Not run: `tiny`: {NO_CONSTRAINT['hf']}.")
    # `tiny` asked in-process (refused) and through an endpoint (measured): both named with their backend
    tiny = pd.concat(free_and_constrained("tiny", free, free), ignore_index=True)
    both = sens.compare_constrained(pd.concat([tiny, tiny.assign(backend="hf")], ignore_index=True))
    assert sens.constrained_status(both.iloc[:1], refused, ("constrained_choice",)) == (
        f"Free vs constrained answers measured for `openai:tiny`. Not run: `hf:tiny`: {NO_CONSTRAINT['hf']}.")

"""The soft vote of the trained CNNs (emolib.train.ensemble): its probabilities, answers and
time against values computed here by hand, and what it refuses."""

import numpy as np
import pandas as pd
import pytest

from emolib.predictions import ENSEMBLE_BACKEND, NO_PROMPT, make_predictions
from emolib.train import ensemble
from emolib.vlm import compare

IDS = np.array(["a", "b", "c"])
TRUTH = np.array([0, 1, 2])
# per model: the probabilities of images a, b, c over 3 classes
PROBA = {
    "resnet50": [[0.6, 0.3, 0.1], [0.2, 0.3, 0.5], [0.1, 0.1, 0.8]],
    "vgg19_bn": [[0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.3, 0.4, 0.3]],
    "efficientnet_b0": [[0.5, 0.4, 0.1], [0.5, 0.2, 0.3], [0.2, 0.2, 0.6]],
}


def _rows(model: str, proba, seed: int = 0, ids=IDS, subset: str = "fer_private", latency: float = 0.01):
    proba = np.asarray(proba)
    return make_predictions(image_id=ids, split="PrivateTest", dataset="fer2013", label_set="fer7",
                            y_true=TRUTH[: len(ids)], restoration="none", subset=subset,
                            y_pred=proba.argmax(1), scores=proba.tolist(), model=model, backend="cnn",
                            prompt=NO_PROMPT, seed=seed, latency_s=np.full(len(ids), latency))


def test_soft_vote_is_the_mean_of_the_members_probabilities_per_seed():
    members = pd.concat([_rows(m, p, seed=s, latency=0.01 * (i + 1)) for s in (0, 1)
                         for i, (m, p) in enumerate(PROBA.items())], ignore_index=True)
    vote = ensemble.soft_vote(members)
    assert len(vote) == 6 and set(vote["backend"]) == {ENSEMBLE_BACKEND} and set(vote["model"]) == {"soft_vote"}
    seed0 = vote[vote["seed"] == 0].set_index("image_id")
    # by hand: a = (1.3, 1.4, 0.3)/3 -> class 1; b = (0.8, 1.3, 0.9)/3 -> 1; c = (0.6, 0.7, 1.7)/3 -> 2
    np.testing.assert_allclose(np.stack(seed0.loc[["a", "b", "c"], "scores"]),
                               [[1.3 / 3, 1.4 / 3, 0.3 / 3], [0.8 / 3, 1.3 / 3, 0.9 / 3], [0.6 / 3, 0.7 / 3, 1.7 / 3]])
    assert seed0.loc[["a", "b", "c"], "y_pred"].tolist() == [1, 1, 2]
    assert seed0.loc[["a", "b", "c"], "y_true"].tolist() == [0, 1, 2]
    # each member alone: resnet50 right on a and c, vgg19_bn on b, efficientnet_b0 on a and c; the vote on b and c
    assert seed0["latency_s"].tolist() == pytest.approx([0.06] * 3)  # 0.01 + 0.02 + 0.03: it needs all three
    assert ensemble.describe(list(PROBA)) == ("soft vote of efficientnet_b0, resnet50, vgg19_bn "
                                             "(mean of their probabilities)")


def test_soft_vote_needs_two_networks_on_the_same_images():
    assert ensemble.soft_vote(_rows("resnet50", PROBA["resnet50"])).empty
    short = _rows("vgg19_bn", PROBA["vgg19_bn"][:2], ids=IDS[:2])
    with pytest.raises(ValueError, match="vgg19_bn and resnet50 predicted different images.*rerun notebook 03"):
        ensemble.soft_vote(pd.concat([_rows("resnet50", PROBA["resnet50"]), short], ignore_index=True))
    no_scores = _rows("vgg19_bn", PROBA["vgg19_bn"]).assign(scores=None)
    with pytest.raises(ValueError, match="rows without probabilities"):
        ensemble.soft_vote(pd.concat([_rows("resnet50", PROBA["resnet50"]), no_scores], ignore_index=True))


def test_each_network_against_its_ensemble_counts_the_discordant_faces_by_hand():
    members = pd.concat([_rows(m, p) for m, p in PROBA.items()], ignore_index=True)
    frame = pd.concat([members, ensemble.soft_vote(members)], ignore_index=True)
    tests = compare.mcnemar_versus(frame, (ENSEMBLE_BACKEND, "soft_vote")).set_index("model")
    # the vote is right on b and c; b = network right and vote wrong, c = the reverse
    assert tests.loc["resnet50", ["b", "c"]].tolist() == [1, 1]  # right on a, wrong on b
    assert tests.loc["vgg19_bn", ["b", "c"]].tolist() == [0, 1]  # wrong on c
    assert tests.loc["efficientnet_b0", ["b", "c"]].tolist() == [1, 1]
    assert tests["accuracy_versus"].tolist() == pytest.approx([2 / 3] * 3)
    assert tests.loc["vgg19_bn", "accuracy"] == pytest.approx(1 / 3)

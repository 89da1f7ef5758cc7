"""Error categories EC I-III against hand-written tables, one per label set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emolib.human_eval.categories import (
    add_error_categories,
    category_matrix,
    count_error_categories,
    error_categories,
    error_category,
    mapping_table,
)
from emolib.labels import LABEL_SETS
from emolib.predictions import make_predictions

# Rows true, columns predicted, in label-set order; "." correct, 1/2/3 = EC I/II/III.
# Written by hand from the sentiment (positive/negative/neutral) and arousal (high/low)
# of each label: e.g. fer7 sad (negative, low) -> angry (negative, high) is EC II.
HAND = {
    "fer7": """
        . 3 3 1 2 1 1
        3 . 3 1 2 1 1
        3 3 . 1 2 1 1
        1 1 1 . 1 3 1
        2 2 2 1 . 1 1
        1 1 1 3 1 . 1
        1 1 1 1 1 1 .""",
    "ferplus8": """
        . 1 1 1 1 1 1 1
        1 . 3 1 1 1 1 1
        1 3 . 1 1 1 1 1
        1 1 1 . 2 2 2 3
        1 1 1 2 . 3 3 2
        1 1 1 2 3 . 3 2
        1 1 1 2 3 3 . 2
        1 1 1 3 2 2 2 .""",
    "emotion6": """
        . 3 3 1 2 1
        3 . 3 1 2 1
        3 3 . 1 2 1
        1 1 1 . 1 3
        2 2 2 1 . 1
        1 1 1 3 1 .""",
    "mikels8": """
        . 2 2 3 1 1 1 1
        2 . 3 2 1 1 1 1
        2 3 . 2 1 1 1 1
        3 2 2 . 1 1 1 1
        1 1 1 1 . 3 3 2
        1 1 1 1 3 . 3 2
        1 1 1 1 3 3 . 2
        1 1 1 1 2 2 2 .""",    "ckplus7": """
        . 2 3 3 1 2 1
        2 . 2 2 1 3 1
        3 2 . 3 1 2 1
        3 2 3 . 1 2 1
        1 1 1 1 . 1 3
        2 3 2 2 1 . 1
        1 1 1 1 3 1 .""",
}
CODE = {".": "correct", "1": "EC I", "2": "EC II", "3": "EC III"}


def test_every_label_set_has_a_hand_table() -> None:
    assert set(HAND) == set(LABEL_SETS)


@pytest.mark.parametrize("name", sorted(HAND))
def test_category_matrix_matches_hand_table(name: str) -> None:
    expected = [[CODE[c] for c in line.split()] for line in HAND[name].strip().splitlines()]
    got = category_matrix(name)
    assert got.to_numpy().tolist() == expected
    for i in range(len(expected)):
        for j in range(len(expected)):
            assert error_category(name, i, j) == expected[i][j]


def test_mapping_table_lists_every_ordered_pair_once() -> None:
    table = mapping_table("fer7")
    assert len(table) == 7 * 6
    row = table[(table["true"] == "sad") & (table["predicted"] == "angry")].iloc[0]
    assert (row["true_arousal"], row["pred_arousal"], row["category"]) == ("low", "high", "EC II")


def test_no_answer_and_no_label_are_their_own_categories() -> None:
    got = error_categories("emotion6", np.array([0, 0, -1, 3]), np.array([-1, 0, 2, 5]))
    assert got.tolist() == ["no answer", "correct", "no label", "EC III"]


def test_counts_per_model_keep_unanswered_rows() -> None:
    frame = make_predictions(
        image_id=["a", "b", "c", "d", "a", "b"],
        split=["test"] * 6,
        dataset=["e6"] * 6,
        label_set=["emotion6"] * 4 + ["fer7"] * 2,
        y_true=[0, 0, 0, 3, 4, 4],
        y_pred=[0, 3, -1, 5, 0, 4],
        model=["m1"] * 4 + ["m2"] * 2,
        backend="x",
        restoration="none",
        prompt="default",
        seed=0,
        subset="s",
        parse_status=["json", "json", "unparseable", "json", "json", "json"],
    )
    cats = add_error_categories(frame)["error_category"].tolist()
    assert cats == ["correct", "EC I", "no answer", "EC III", "EC II", "correct"]
    counts = count_error_categories(frame).set_index("model")
    assert counts.loc[
        "m1", ["correct", "EC I", "EC II", "EC III", "no answer", "n", "errors"]
    ].tolist() == [1, 1, 0, 1, 1, 4, 3]
    assert counts.loc["m2", "error_rate"] == pytest.approx(0.5)
    assert "no label" not in counts.columns
    assert isinstance(counts, pd.DataFrame)

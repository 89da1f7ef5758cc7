"""Notebook 07 headless under papermill (smoke), without and with annotation files, after
notebooks 01-04 ran (``smoke_stages``): it studies the CNN and VLM stand-ins' errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from smoke_stages import upstream_outputs

from emolib.config import load_profile
from emolib.human_eval import annotations, sampling, stage
from emolib.human_eval.annotator import Annotator
from emolib.labels import LABEL_SETS
from emolib.paths import RESULTS_ENV_VAR, project_root

NOTEBOOK = project_root() / "notebooks" / "07_human_eval.ipynb"


def _run(tmp_path: Path) -> str:
    """Execute notebook 07 for smoke; return the text of its printed outputs."""
    import nbformat
    import papermill

    out = tmp_path / "07_out.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(out),
        parameters={"profile_name": "smoke"},
        cwd=str(NOTEBOOK.parent),
        progress_bar=False,
        kernel_name="python3",
    )
    cells = nbformat.read(out, as_version=4).cells
    outputs = [o for c in cells if c.cell_type == "code" for o in c.outputs]
    # printed text and displayed Markdown (the notebook's findings are Markdown)
    return "".join(o.get("text", "") + o.get("data", {}).get("text/markdown", "") for o in outputs)


@pytest.mark.slow
def test_notebook_runs_without_annotations(tmp_path: Path, monkeypatch) -> None:
    upstream_outputs(load_profile("smoke"), tmp_path)
    monkeypatch.setenv(RESULTS_ENV_VAR, str(tmp_path))
    text = _run(tmp_path)
    assert "No annotations yet" in text
    assert "Not run: no recorded GPT-4V answers" in text  # smoke records none: a notice, no empty table
    tables = tmp_path / "tables" / "smoke"
    sources = pd.read_csv(tables / "tab_07_sources.csv", keep_default_na=False)
    assert {"cnn", "cnn_ensemble", "clip", "clip_probe", "hf"} <= set(sources["backend"])
    assert set(sources["status"]) == {"found"}
    consistency = pd.read_csv(tables / "tab_07_consistency.csv", keep_default_na=False)
    assert "FAILED" not in set(consistency["status"])
    studied = consistency[consistency["check"] == "human evaluation studies every model"]
    # 3 CNNs, their soft vote, CLIP, probe, tiny LLaVA
    assert len(studied) == 7 and set(studied["status"]) == {"ok"}
    for name in (
        "category_mapping",
        "error_counts",
        "sample",
        "agreement",
        "side_with_model",
        "vote_plausibility",
    ):
        assert (tables / f"tab_07_{name}.csv").is_file(), name
    for name in ("error_categories", "vote_plausibility"):
        assert (tmp_path / "figures" / "smoke" / f"fig_07_{name}.png").is_file()
    pairs = sum(len(labels) * (len(labels) - 1) for labels in LABEL_SETS.values())  # every ordered pair once
    assert len(pd.read_csv(tables / "tab_07_category_mapping.csv")) == pairs


@pytest.mark.slow
def test_notebook_uses_annotation_files_and_filled_sheets(tmp_path: Path, monkeypatch) -> None:
    profile = load_profile("smoke")
    image_sets = upstream_outputs(profile, tmp_path)
    monkeypatch.setenv(RESULTS_ENV_VAR, str(tmp_path))
    predictions, _ = stage.collect_predictions(profile, image_sets)
    # what the notebook finds: the sample of the errors whose images are here
    sample_dir = sampling.save_sample(profile, stage.with_images(predictions, image_sets), image_sets)
    folder = annotations.annotations_dir(profile, sample_dir)
    first, second = (
        Annotator(sample_dir, "annotator_1", folder),
        Annotator(sample_dir, "bea", folder),
    )
    for k in range(len(first)):
        first.buttons["A" if k % 3 else "both"].click()
        second.buttons["A" if k % 4 else "neither"].click()
    sheet = pd.DataFrame(
        {
            "item_id": first.sample["item_id"][:5],
            "choice": ["1", "2", "3", "4", "B"],
            "note": "",
            "annotator": "cleo",
        }
    )
    (sample_dir / "filled_sheets").mkdir()
    sheet.to_csv(sample_dir / "filled_sheets" / "cleo.csv", index=False)
    text = _run(tmp_path)
    assert "No annotations yet" not in text
    assert "Annotations: 65 from 3 annotator(s) on 30 sampled errors" in text
    tables = tmp_path / "tables" / "smoke"
    agree = pd.read_csv(tables / "tab_07_agreement.csv").set_index("error_category")
    assert agree.loc["all", "annotators"] == 3 and agree.loc["all", "items_multi_rated"] == 30
    assert pd.notna(agree.loc["all", "krippendorff_alpha"])
    side = pd.read_csv(tables / "tab_07_side_with_model.csv")
    assert set(side["model"]) == set(first.sample["model"])
    assert (tmp_path / "figures" / "smoke" / "fig_07_side_with_model.png").is_file()
    assert len(annotations.read_annotations(folder / "cleo.csv")) == 5

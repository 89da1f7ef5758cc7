"""run_all.sh: every notebook of the smoke profile, headless, on a bare machine (no data)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from emolib.paths import project_root

ROOT = project_root()
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _run_all(profile: str, out: Path, notebooks: Path | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "EMOLIB_SKIP_SETUP": "1", "EMOLIB_VENV": sys.prefix, "EMOLIB_RESULTS_DIR": str(out),
           "EMOLIB_DATA_DIR": str(out / "no_data_here")}  # smoke must not need data
    if notebooks:
        env["EMOLIB_NOTEBOOKS"] = str(notebooks)
    return subprocess.run(["bash", str(ROOT / "run_all.sh"), profile], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_notebooks_name_outputs_after_the_loaded_profile():
    """Outputs go to figures/<profile.name>/, not to a folder named after the parameter (which
    may be a path to a YAML file), and a notebook hands its overrides to load_profile as they
    are, so a wrong type is a ConfigError, not a bare TypeError."""
    for path in NOTEBOOKS:
        code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        assert "profile = load_profile(profile_name, overrides=overrides)" in code, path.name
        assert not re.search(r"(?<![\w(])profile_name,\s*f?\"", code), path.name  # outputs: profile.name


def test_committed_notebooks_are_clean():
    assert [nb.name[:2] for nb in NOTEBOOKS] == sorted(nb.name[:2] for nb in NOTEBOOKS)
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), path.name
        assert code[0].source.startswith('profile_name = "'), path.name
        for cell in code:
            assert not cell.outputs and cell.execution_count is None, path.name
            assert not any(line.lstrip().startswith(("def ", "class ")) for line in cell.source.splitlines()), path.name
        assert nb.cells[0].cell_type == "markdown" and "What we found" in "".join(
            c.source for c in nb.cells if c.cell_type == "markdown"), path.name


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """One run of every notebook on the smoke profile, shared by the tests below."""
    out = tmp_path_factory.mktemp("smoke_run")
    # by path, from outside configs/: `./run_all.sh path/to/profile.yaml` names its outputs after the file
    own = out / "my_profiles" / "smoke.yaml"
    own.parent.mkdir()
    own.write_text((ROOT / "configs" / "smoke.yaml").read_text())
    return out, _run_all(str(own), out)


@pytest.mark.slow
def test_smoke_profile_runs_every_notebook(smoke_run):
    out, result = smoke_run
    assert result.returncode == 0, result.stdout + result.stderr
    executed = out / "results" / "smoke" / "notebooks"
    for nb in NOTEBOOKS:
        assert (executed / nb.name).is_file() and (executed / nb.with_suffix(".html").name).is_file()
        assert f"{nb.name} ... ok" in result.stdout
        number = nb.name[:2]
        figures = list((out / "figures" / "smoke").glob(f"fig_{number}_*.png"))
        assert figures, f"notebook {nb.name} wrote no figure"
        assert all(f.stat().st_size > 5000 for f in figures)
        # papermill recorded the profile as a parameter
        executed_nb = json.loads((executed / nb.name).read_text())
        assert any("injected-parameters" in c["metadata"].get("tags", []) for c in executed_nb["cells"])
    assert "all" in result.stdout and "done in" in result.stdout
    # notebook 06 collected a cost record from every stage that runs before it
    coverage = pd.read_csv(out / "tables" / "smoke" / "tab_06_stage_coverage.csv")
    for stage in ("data", "restoration", "cnn", "hard", "vlm", "prompts"):
        rows = coverage[coverage["stage"] == stage]
        assert len(rows) and (rows["n_records"] > 0).all(), stage
        assert (rows["n_failed"] == 0).all(), stage


@pytest.mark.slow
def test_every_notebook_shows_its_figures_inline_and_in_html(smoke_run):
    out, result = smoke_run
    assert result.returncode == 0, result.stdout + result.stderr
    executed = out / "results" / "smoke" / "notebooks"
    for nb in NOTEBOOKS:
        cells = json.loads((executed / nb.name).read_text())["cells"]
        images = [o for c in cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
        assert images, f"{nb.name}: no figure in the executed notebook"
        assert not any("PosixPath(" in "".join(o.get("data", {}).get("text/plain", "")) for c in cells
                       for o in c.get("outputs", [])), nb.name
        html = (executed / nb.with_suffix(".html").name).read_text()
        assert html.count("data:image/png;base64") >= len(images), nb.name


@pytest.mark.slow
def test_consistency_check_passes_on_the_smoke_outputs(smoke_run, monkeypatch):
    from emolib import catalog
    from emolib.config import load_profile

    out, result = smoke_run
    assert result.returncode == 0, result.stdout + result.stderr
    monkeypatch.setenv("EMOLIB_RESULTS_DIR", str(out))
    profile = load_profile("smoke")
    table = catalog.check(profile)
    assert (table["status"] == "ok").all(), table[table["status"] != "ok"]
    checks = set(table["check"])
    assert {"one row per id of the subset", "restored vs original on the same ids", "training cost",
            "human evaluation studies every model"} <= checks
    # notebook 07 studied the CNN, CLIP (zero-shot and probe) and generative stand-ins
    sources = pd.read_csv(out / "tables" / "smoke" / "tab_07_sources.csv")
    assert {"cnn", "clip", "clip_probe", "hf"} <= set(sources["backend"])
    assert set(profile.cnn.models) <= set(sources["model"])
    # notebook 06's accuracy-vs-cost table has a training time for every trained CNN, equal to 03's
    tradeoff = pd.read_csv(out / "tables" / "smoke" / "tab_06_accuracy_vs_cost.csv").set_index("model")
    cost03 = pd.read_csv(out / "tables" / "smoke" / "tab_03_cost.csv").set_index("model")
    for model in profile.cnn.models:
        assert tradeoff.loc[model, "train_s"] > 0
        assert tradeoff.loc[model, "train_s"] == pytest.approx(cost03.loc[model, "train_s"], rel=1e-9)


def _copy_outputs(out: Path, tmp_path: Path) -> Path:
    import shutil

    copy = tmp_path / "copy"
    for part in ("results", "tables"):
        shutil.copytree(out / part, copy / part)
    return copy


@pytest.mark.slow
@pytest.mark.parametrize("defect", ["dropped_row", "duplicated_row", "missing_cost_record", "unpaired_restoration",
                                    "missing_upstream", "model_not_in_human_eval", "cost_tables_disagree"])
def test_consistency_check_catches_each_planted_defect(smoke_run, tmp_path, monkeypatch, defect):
    from emolib import catalog
    from emolib.config import load_profile
    from emolib.recorder import COST_FILE

    out, result = smoke_run
    assert result.returncode == 0, result.stdout + result.stderr
    copy = _copy_outputs(out, tmp_path)
    monkeypatch.setenv("EMOLIB_RESULTS_DIR", str(copy))
    profile = load_profile("smoke")
    cnn_path = catalog.predictions_path(profile, "cnn")
    cnn = pd.read_parquet(cnn_path)
    expected = {
        "dropped_row": "id(s) of the subset missing",
        "duplicated_row": "twice",
        "missing_cost_record": "no training-cost record",
        "unpaired_restoration": "have no original-face prediction",
        "missing_upstream": "run notebooks/04_vlm_zero_shot.ipynb",
        "model_not_in_human_eval": "notebook 07 did not read them",
        "cost_tables_disagree": "notebook 06 (tab_06_accuracy_vs_cost) says",
    }[defect]
    if defect == "dropped_row":
        cnn.iloc[1:].to_parquet(cnn_path)
    elif defect == "duplicated_row":
        pd.concat([cnn, cnn.iloc[:1]]).to_parquet(cnn_path)
    elif defect == "missing_cost_record":
        (catalog.cnn_model_store(profile, profile.cnn.models[0], profile.cnn.seeds[0]).dir / COST_FILE).unlink()
    elif defect == "unpaired_restoration":
        first = cnn[(cnn["restoration"] != "none")]["image_id"].iloc[0]
        cnn[~((cnn["restoration"] == "none") & (cnn["image_id"] == first))].to_parquet(cnn_path)
    elif defect == "missing_upstream":
        catalog.predictions_path(profile, "vlm").unlink()
        table = catalog.check(profile, raise_on_failure=False)
        row = table[(table["check"] == "predictions") & (table["subject"] == "vlm")]
        assert row["status"].tolist() == ["not run"] and expected in row["detail"].iloc[0]
        with pytest.raises(catalog.MissingUpstream, match="04_vlm_zero_shot"):
            catalog.read_stage_predictions(profile, "vlm")
        return
    elif defect == "model_not_in_human_eval":
        sources = copy / "tables" / "smoke" / "tab_07_sources.csv"
        table = pd.read_csv(sources)
        table[table["backend"] != "clip_probe"].to_csv(sources, index=False)
    elif defect == "cost_tables_disagree":
        path = copy / "tables" / "smoke" / "tab_06_accuracy_vs_cost.csv"
        table = pd.read_csv(path)
        table.loc[table["model"] == profile.cnn.models[0], "train_s"] = 1.5  # the old bug: inference time only
        table.to_csv(path, index=False)
    with pytest.raises(catalog.ConsistencyError, match=re.escape(expected)):
        catalog.check(profile)


def test_run_all_stops_at_first_failure_and_names_it(tmp_path):
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    cells = {"01_ok.ipynb": "x = 1", "02_broken.ipynb": "raise ValueError('boom')", "03_never.ipynb": "y = 2"}
    for name, source in cells.items():
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell('profile_name = "smoke"', metadata={"tags": ["parameters"]}),
                    nbformat.v4.new_code_cell(source)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, nbdir / name)
    result = _run_all("smoke", tmp_path, notebooks=nbdir, timeout=300)
    assert result.returncode != 0
    assert "01_ok.ipynb ... ok" in result.stdout
    assert "02_broken.ipynb" in result.stderr and "failed" in result.stderr
    assert "03_never" not in result.stdout
    assert (tmp_path / "results" / "smoke" / "notebooks" / "01_ok.html").is_file()


# ----------------------------------------------------------------------------- parameters
def _tiny_notebook(path: Path, parameters: str, *cells: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(source) for source in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_every_notebook_checks_its_parameters_right_after_declaring_them():
    """The cell after the parameters cell stops a run given a name the notebook lacks; its
    declared list is the parameters cell's (as papermill reads it)."""
    import ast

    from emolib.run.notebook_params import declared_parameters

    for path in NOTEBOOKS:
        cells = nbformat.read(path, as_version=4).cells
        at = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
        check = cells[at + 1]
        assert check.cell_type == "code" and "check_parameters(globals(), declared=" in check.source, path.name
        call = next(n for n in ast.walk(ast.parse(check.source)) if isinstance(n, ast.Call)
                    and getattr(n.func, "id", "") == "check_parameters")
        declared = ast.literal_eval(next(k.value for k in call.keywords if k.arg == "declared"))
        assert declared == declared_parameters(path) == ["profile_name", "overrides"], path.name


def test_check_parameters_reads_the_cell_papermill_injected():
    from emolib.run.notebook_params import UnknownParameter, check_parameters, injected_names

    injected = '# Parameters\nprofil = "smoke"\noverides = {"cnn.epochs": 2}\n'
    history = ["", 'profile_name = "quick"\noverrides = {}', injected, "check_parameters(...)"]
    assert injected_names(history) == ["profil", "overides"]
    assert injected_names(["", 'profile_name = "quick"', "x = 1"]) == []  # run by hand: nothing injected
    namespace = {"In": history, "profile_name": "quick", "overrides": {}, "profil": "smoke"}
    with pytest.raises(UnknownParameter, match=r"unknown parameter 'profil' \(did you mean 'profile_name'\?\), "
                                               r"'overides' \(did you mean 'overrides'\?\)"):
        check_parameters(namespace, ["profile_name", "overrides"])
    good = {"In": ["", "# Parameters\nprofile_name = 'smoke'\nPAPERMILL_INPUT_PATH = 'a.ipynb'\n"],
            "profile_name": "smoke",
            "overrides": {}}
    assert check_parameters(good, ["profile_name", "overrides"]) == ["profile_name", "PAPERMILL_INPUT_PATH"]
    with pytest.raises(UnknownParameter, match=r"\['overrides'\] of this notebook are not defined"):
        check_parameters({"In": [""], "profile_name": "quick"}, ["profile_name", "overrides"])


@pytest.mark.parametrize(("args", "error"), [
    (["-p", "profil", "smoke"], "unknown parameter 'profil' (did you mean 'profile_name'?)"),
    (["-p", "profile", "smoke"], "unknown parameter 'profile' (did you mean 'profile_name'?)"),  # before the rename
    (["-y", "{overides: {cnn.epochs: 2}}"], "unknown parameter 'overides' (did you mean 'overrides'?)"),
    (["-p", "overrides", "cnn.epochs=2"], "overrides must be a mapping of dotted keys"),
    (["-p", "profile_name", "smoke", "-y", "{overrides: {cnn.epochs: 2}}", "--inject-paths"], None),
])
def test_a_users_own_papermill_call_stops_on_an_unknown_parameter(tmp_path, args, error):
    """papermill itself only logs "Passed unknown parameter" and runs the defaults (quick)."""
    notebook = _tiny_notebook(
        tmp_path / "nb.ipynb", 'profile_name = "quick"  # a profile\noverrides = {}  # dotted keys',
        'from emolib.run.notebook_params import check_parameters\n\n'
        'check_parameters(globals(), declared=["profile_name", "overrides"])',
        "from emolib.config import load_profile\n\nprofile = load_profile(profile_name, overrides=overrides)",
        'print("ran", profile.name, profile.cnn.epochs)')
    result = subprocess.run([str(Path(sys.executable).parent / "papermill"), str(notebook), str(tmp_path / "out.ipynb"),
                             *args, "--log-level", "WARNING", "--no-progress-bar"],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    executed = (tmp_path / "out.ipynb").read_text()
    if error is None:
        assert result.returncode == 0, result.stderr
        assert "ran smoke 2" in executed
    else:
        assert result.returncode != 0
        assert error in result.stderr.replace("\\'", "'")
        assert "ran " not in executed  # nothing ran with the defaults


def test_run_all_preflight_names_a_notebook_lacking_a_passed_parameter(tmp_path):
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    _tiny_notebook(nbdir / "01_ok.ipynb", 'profile_name = "smoke"', "x = 1")
    _tiny_notebook(nbdir / "02_no_profile.ipynb", 'profile_names = "smoke"', "y = 2")
    result = _run_all("smoke", tmp_path, notebooks=nbdir, timeout=300)
    assert result.returncode == 2
    assert ("unknown parameter 'profile_name' (did you mean 'profile_names'?) passed to 02_no_profile.ipynb; it takes "
            "only profile_names") in result.stderr
    assert "01_ok.ipynb" not in result.stdout  # stopped before any notebook ran

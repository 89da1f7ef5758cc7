"""run_all.sh: every notebook of the smoke profile, headless, on a bare machine (no data)."""

from __future__ import annotations

import json
import os
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


def test_committed_notebooks_are_clean():
    assert [nb.name[:2] for nb in NOTEBOOKS] == sorted(nb.name[:2] for nb in NOTEBOOKS)
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), path.name
        assert code[0].source.startswith('profile = "'), path.name
        for cell in code:
            assert not cell.outputs and cell.execution_count is None, path.name
            assert not any(line.lstrip().startswith(("def ", "class ")) for line in cell.source.splitlines()), path.name
        assert nb.cells[0].cell_type == "markdown" and "What we found" in "".join(
            c.source for c in nb.cells if c.cell_type == "markdown"), path.name


@pytest.mark.slow
def test_smoke_profile_runs_every_notebook(tmp_path):
    result = _run_all("smoke", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    executed = tmp_path / "results" / "smoke" / "notebooks"
    for nb in NOTEBOOKS:
        assert (executed / nb.name).is_file() and (executed / nb.with_suffix(".html").name).is_file()
        assert f"{nb.name} ... ok" in result.stdout
        number = nb.name[:2]
        figures = list((tmp_path / "figures" / "smoke").glob(f"fig_{number}_*.png"))
        assert figures, f"notebook {nb.name} wrote no figure"
        assert all(f.stat().st_size > 5000 for f in figures)
        # papermill recorded the profile as a parameter
        executed_nb = json.loads((executed / nb.name).read_text())
        assert any("injected-parameters" in c["metadata"].get("tags", []) for c in executed_nb["cells"])
    assert "all" in result.stdout and "done in" in result.stdout
    # notebook 06 collected a cost record from every stage that runs before it
    coverage = pd.read_csv(tmp_path / "tables" / "smoke" / "tab_06_stage_coverage.csv").set_index("stage")
    for stage in ("data", "restoration", "cnn", "vlm", "prompts"):
        assert coverage.loc[stage, "n_records"] > 0, stage
        assert coverage.loc[stage, "n_failed"] == 0, stage


def test_run_all_stops_at_first_failure_and_names_it(tmp_path):
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    cells = {"01_ok.ipynb": "x = 1", "02_broken.ipynb": "raise ValueError('boom')", "03_never.ipynb": "y = 2"}
    for name, source in cells.items():
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell('profile = "smoke"', metadata={"tags": ["parameters"]}),
                    nbformat.v4.new_code_cell(source)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, nbdir / name)
    result = _run_all("smoke", tmp_path, notebooks=nbdir, timeout=300)
    assert result.returncode != 0
    assert "01_ok.ipynb ... ok" in result.stdout
    assert "02_broken.ipynb" in result.stderr and "failed" in result.stderr
    assert "03_never" not in result.stdout
    assert (tmp_path / "results" / "smoke" / "notebooks" / "01_ok.html").is_file()

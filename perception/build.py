"""Build a FrameProfile: photos (or video files) -> scenes -> every model's answer on every frame under every action.

Steps (each cached in ``<out>.parts/`` so an interrupted build restarts where it stopped):
1. export the pretrained student (with its pooled penultimate features as a second output), server (one per
   offload resolution) and teacher to ONNX;
2. render frames of the calibration scenes and quantize the student to int8 on them (never on evaluation frames);
3. per chunk of scenes: render the scenes, run the int8 and float32 student on the raw frame, JPEG-encode the frame
   at each offload resolution and run the server on the decoded JPEG, JPEG-encode the full frame for the teacher;
4. fit the temperature and the embedding projection on the calibration frames, train the distilled-confidence head
   with cross-fitting (``perception.distill``), measure batch-1 latencies, save.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from offload_common.files import atomic_path
from offload_common.vision import calibrated_topk
from offload_common.vision import embedding as device_embedding

from .calibration import ece, fit_temperature
from .distill import fit_distilled
from .embedding import fit_projection
from .frames import (
    LabelledImage,
    SceneSpec,
    check_images_decode,
    iter_video_frames,
    load_labelled_images,
    render_scene,
)
from .models import OnnxClassifier, decode_jpeg, export_onnx, jpeg_bytes, resize_crop, softmax, to_input, weights_sha256
from .profile import FrameProfile
from .quantize import quantize_student


@dataclass(frozen=True)
class BuildConfig:
    """Every choice that shapes a profile; stored in its metadata. Defaults were chosen by measurement (see README)."""

    student: str = "efficientnet-lite0"
    student_res: int = 128  # the NPU's reduced input resolution
    server: str = "efficientnet-lite1"
    server_resolutions: tuple[int, ...] = (112, 160, 208, 256)
    teacher: str = "efficientnet-lite2"
    teacher_res: int = 288
    teacher_flip: bool = False  # horizontal-flip test-time augmentation (mean of the two softmaxes)
    jpeg_quality: int = 85
    top_k: int = 5
    scene: SceneSpec = field(default_factory=SceneSpec)
    embedding_dim: int = 32
    calib_fraction: float = 0.1  # share of scenes that calibrate the student (temperature, int8 ranges, projection)
    calib_frames_per_scene: int = 8  # frames per calibration scene fed to the int8 range collection
    test_fraction: float = 0.3  # the scene split the distilled head is cross-fitted for (EnvConfig's default)
    split_seed: int = 0
    video_segment_s: float = 4.0  # video files are cut into scenes of this length (the unit of splitting)
    seed: int = 0
    chunk_scenes: int = 25
    threads: int = 2
    max_images: int | None = None
    latency_repeats: int = 50

    def __post_init__(self) -> None:
        if list(self.server_resolutions) != sorted(set(self.server_resolutions)) or not self.server_resolutions:
            raise ValueError(f"server_resolutions must be distinct and ascending, got {self.server_resolutions}")
        if not 1 <= self.jpeg_quality <= 95:
            raise ValueError(f"jpeg_quality must be in 1..95, got {self.jpeg_quality}")
        if not 0 < self.calib_fraction < 1:
            raise ValueError(f"calib_fraction must be in (0, 1), got {self.calib_fraction}")
        if self.top_k < 1:
            raise ValueError("top_k must be >= 1")
        if not 1 <= self.embedding_dim <= 256:
            raise ValueError(f"embedding_dim must be in 1..256, got {self.embedding_dim}")
        if self.max_images is not None and self.max_images < 1:
            raise ValueError(f"max_images must be >= 1, got {self.max_images}")
        if self.video_segment_s <= 0:
            raise ValueError(f"video_segment_s must be > 0, got {self.video_segment_s}")

    def to_json(self) -> dict:
        d = asdict(self)
        d["server_resolutions"] = list(self.server_resolutions)
        d["scene"]["capture"] = list(self.scene.capture)
        d["scene"]["zoom_range"] = list(self.scene.zoom_range)
        return d

    @classmethod
    def from_json(cls, data: dict) -> BuildConfig:
        """The config ``to_json`` wrote (a profile's ``meta["build"]``), e.g. to re-render a profile's scenes."""
        d = dict(data)
        scene = dict(d.pop("scene"))
        scene["capture"] = tuple(scene["capture"])
        scene["zoom_range"] = tuple(scene["zoom_range"])
        d["server_resolutions"] = tuple(d["server_resolutions"])
        return cls(**d, scene=SceneSpec(**scene))


@dataclass(frozen=True)
class SceneSource:
    """One scene to profile: where its frames come from and its label (None: label frames with the teacher)."""

    scene_id: int
    n_frames: int
    frames: Callable[[], list[Image.Image]]
    label: int | None
    origin: str


def _atomic_savez(path: Path, **arrays: NDArray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (hex)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _calibration_frames(sources: Sequence[SceneSource], per_scene: int) -> Iterator[Image.Image]:
    for src in sources:
        frames = src.frames()
        for i in np.unique(np.linspace(0, len(frames) - 1, per_scene).round().astype(int)):
            yield frames[i]


class _Models:
    """The ONNX sessions of one build, exported (and quantized) once into the work folder."""

    def __init__(self, cfg: BuildConfig, work: Path, calib: Sequence[SceneSource], log: Callable[[str], None]):
        def onnx(name: str, res: int, features: bool = False) -> Path:
            path = work / f"{name}-{res}{'-features' if features else ''}.onnx"
            if not path.exists():
                log(f"exporting {name} at {res}px to ONNX")
                export_onnx(name, res, path, with_features=features)
            return path

        self.student_fp32 = OnnxClassifier(onnx(cfg.student, cfg.student_res, True), cfg.threads)
        int8_path = work / f"{cfg.student}-{cfg.student_res}-features-int8.onnx"
        if not int8_path.exists():
            log(f"quantizing the student to int8 on {len(calib)} calibration scenes")
            x = np.stack([to_input(resize_crop(f, cfg.student_res))
                          for f in _calibration_frames(calib, cfg.calib_frames_per_scene)])
            quantize_student(self.student_fp32.path, x, int8_path)
        self.student = OnnxClassifier(int8_path, cfg.threads)
        self.server = [OnnxClassifier(onnx(cfg.server, r), cfg.threads) for r in cfg.server_resolutions]
        self.teacher = OnnxClassifier(onnx(cfg.teacher, cfg.teacher_res), cfg.threads)


def _process_chunk(sources: Sequence[SceneSource], models: _Models, cfg: BuildConfig) -> dict:
    frames, labels, scenes = [], [], []
    for src in sources:
        fs = src.frames()
        if len(fs) != src.n_frames:
            raise RuntimeError(f"{src.origin}: expected {src.n_frames} frames, rendered {len(fs)}")
        frames += fs
        labels += [-1 if src.label is None else src.label] * len(fs)
        scenes += [src.scene_id] * len(fs)
    student_x = np.stack([to_input(resize_crop(f, cfg.student_res)) for f in frames])
    logits, feats = models.student.logits_and_features(student_x)
    out: dict[str, NDArray] = {
        "label": np.array(labels), "scene": np.array(scenes),
        "student_logits": logits.astype(np.float32), "student_features": feats.astype(np.float16),
        "student_fp32_pred": models.student_fp32.logits(student_x).argmax(1),
    }
    preds, confs, sizes = [], [], []
    for res, clf in zip(cfg.server_resolutions, models.server):
        blobs = [jpeg_bytes(resize_crop(f, res), cfg.jpeg_quality) for f in frames]
        p = softmax(clf.logits(np.stack([to_input(decode_jpeg(b)) for b in blobs])))
        preds.append(p.argmax(1))
        confs.append(p.max(1))
        sizes.append([len(b) for b in blobs])
    out["server_pred"] = np.stack(preds, 1)
    out["server_conf"] = np.stack(confs, 1)
    out["server_bytes"] = np.array(sizes).T
    blobs = [jpeg_bytes(f, cfg.jpeg_quality) for f in frames]
    tx = np.stack([to_input(resize_crop(decode_jpeg(b), cfg.teacher_res)) for b in blobs])
    p = softmax(models.teacher.logits(tx))
    if cfg.teacher_flip:
        p = (p + softmax(models.teacher.logits(np.ascontiguousarray(tx[..., ::-1])))) / 2
    out["teacher_pred"], out["teacher_conf"] = p.argmax(1), p.max(1)
    out["teacher_bytes"] = np.array([len(b) for b in blobs])
    return out


def photo_scenes(images: Sequence[LabelledImage], cfg: BuildConfig) -> list[SceneSource]:
    """One scene per photo: its length and camera path come from a generator seeded by (build seed, photo index)."""
    out = []
    for i, im in enumerate(images):
        seed = cfg.seed * 1_000_003 + i
        n = cfg.scene.n_frames(np.random.default_rng(seed))  # the same first draw render_scene makes

        def frames(path: Path = im.path, seed: int = seed, n: int = n) -> list[Image.Image]:
            with Image.open(path) as img:
                return list(render_scene(img, cfg.scene, seed=seed, n_frames=n))

        out.append(SceneSource(i, n, frames, im.label, str(im.path)))
    return out


def video_scenes(videos: Sequence[str | os.PathLike], cfg: BuildConfig) -> list[SceneSource]:
    """Scenes of real video files: each file decoded at the scene frame rate and cut into ``video_segment_s`` pieces.

    Frames carry no ground truth: they are labelled with the teacher's answer (the usual practice in video
    analytics, recorded in the profile's metadata). Each file is decoded once here to count its frames, so an
    undecodable file fails before any model runs.
    """
    out: list[SceneSource] = []
    seg = max(1, int(round(cfg.video_segment_s * cfg.scene.fps)))
    for path in videos:
        n = sum(1 for _ in iter_video_frames(path, cfg.scene.fps))
        cuts = list(range(0, n, seg)) + [n]
        if len(cuts) > 2 and cuts[-1] - cuts[-2] < seg // 2:
            del cuts[-2]  # a short tail joins the segment before it
        for start, stop in zip(cuts[:-1], cuts[1:]):

            def frames(path=path, start=start, stop=stop) -> list[Image.Image]:
                return [f.resize(cfg.scene.capture, Image.BILINEAR) for i, f in
                        enumerate(iter_video_frames(path, cfg.scene.fps)) if start <= i < stop]

            out.append(SceneSource(len(out), stop - start, frames, None, f"{path}[{start}:{stop}]"))
    return out


def build_profile(images_dir: str | os.PathLike | None, out: str | os.PathLike, cfg: BuildConfig = BuildConfig(),
                  labels_tsv: str | os.PathLike | None = None, progress: bool = True,
                  log: Callable[[str], None] = print, videos: Sequence[str | os.PathLike] = ()) -> FrameProfile:
    """Build, save (atomically) and return the frame profile of the photos in ``images_dir`` (or of ``videos``)."""
    t_start = time.time()
    out = Path(out)
    if videos:
        sources = video_scenes(videos, cfg)
        dataset = {"videos": [str(v) for v in videos], "label_source": "teacher",
                   "label_note": "video frames have no ground truth: labels are the teacher's top-1 answer"}
    else:
        images = load_labelled_images(images_dir, labels_tsv)
        if cfg.max_images is not None:
            images = images[: cfg.max_images]
        check_images_decode(images)  # a corrupt photo is named now, not minutes into the build
        sources = photo_scenes(images, cfg)
        dataset = {"images_dir": str(Path(images_dir)), "photos": len(images), "label_source": "dataset"}
    if len(sources) < 2:
        what = f"--video {' '.join(str(v) for v in videos)} ({cfg.video_segment_s:g} s scenes)" if videos else \
            f"the photos in {images_dir}"
        raise ValueError(f"a profile needs at least 2 scenes (calibration scenes are never evaluated), got "
                         f"{len(sources)} from {what}: give more or longer inputs")
    work = out.with_name(out.name + ".parts")
    work.mkdir(parents=True, exist_ok=True)
    stamp = work / "config.json"
    cfg_json = json.dumps({**cfg.to_json(), "sources": [s.origin for s in sources]}, sort_keys=True)
    if stamp.exists() and stamp.read_text() != cfg_json:
        raise ValueError(f"{work} holds a build with another configuration or input; delete it or use another "
                         "output path")
    stamp.write_text(cfg_json)

    rng = np.random.default_rng(cfg.seed)
    n_calib = max(1, int(round(cfg.calib_fraction * len(sources))))
    calib_ids = np.sort(rng.permutation(len(sources))[:n_calib])
    models = _Models(cfg, work, [sources[i] for i in calib_ids], log)

    chunks = [sources[i:i + cfg.chunk_scenes] for i in range(0, len(sources), cfg.chunk_scenes)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(s.n_frames for s in sources), unit="frame", desc="profiling")
    parts = []
    for c, chunk in enumerate(chunks):
        path = work / f"chunk_{c:05d}.npz"
        if not path.exists():
            _atomic_savez(path, **_process_chunk(chunk, models, cfg))
        with np.load(path) as data:
            parts.append({"scene" if k == "clip" else k: data[k] for k in data.files})  # chunks of older builds
        if bar is not None:
            bar.update(sum(s.n_frames for s in chunk))
    if bar is not None:
        bar.close()
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    label = np.where(cat["label"] < 0, cat["teacher_pred"], cat["label"])
    calib = np.isin(cat["scene"], calib_ids)
    logits = cat["student_logits"]
    temperature = fit_temperature(logits[calib], label[calib])
    p_raw = softmax(logits)
    p_cal = softmax(logits, temperature)
    topk_prob, top = calibrated_topk(logits, temperature, cfg.top_k)  # what the device computes per frame
    correct = top[:, 0] == label
    raw_conf = p_raw.max(1)
    ev = ~calib
    projection = fit_projection(cat["student_features"][calib], cfg.embedding_dim)
    embedding = device_embedding(cat["student_features"], projection.mean, projection.components)
    log("measuring batch-1 latencies")
    latency = {f"student_int8@{cfg.student_res}": models.student.latency_ms(cfg.latency_repeats),
               f"student_fp32@{cfg.student_res}": models.student_fp32.latency_ms(cfg.latency_repeats)}
    for res, clf in zip(cfg.server_resolutions, models.server):
        latency[f"server@{res}"] = clf.latency_ms(cfg.latency_repeats)
    latency[f"teacher@{cfg.teacher_res}"] = models.teacher.latency_ms(cfg.latency_repeats) * (2 if cfg.teacher_flip else 1)
    import onnxruntime

    lengths = np.unique(cat["scene"], return_counts=True)[1]
    meta = {
        "build": cfg.to_json(),
        "models": {"student": cfg.student, "server": cfg.server, "teacher": cfg.teacher},
        "weights_sha256": {m: weights_sha256(m) for m in sorted({cfg.student, cfg.server, cfg.teacher})},
        # the int8 student this profile was measured with (the device must run exactly this file)
        "student_onnx": {"file": models.student.path.name, "sha256": file_sha256(models.student.path)},
        "student_res": cfg.student_res, "server_resolutions": list(cfg.server_resolutions),
        "teacher_res": cfg.teacher_res, "teacher_flip": cfg.teacher_flip, "jpeg_quality": cfg.jpeg_quality,
        "capture": list(cfg.scene.capture), "fps": cfg.scene.fps,
        "scene_frames": {"median": float(np.median(lengths)), "min": int(lengths.min()), "max": int(lengths.max()),
                         "median_s": float(np.median(lengths) / cfg.scene.fps)},
        "temperature": temperature,
        "ece_before": ece(raw_conf[ev], correct[ev]), "ece_after": ece(p_cal.max(1)[ev], correct[ev]),
        "ece_bins": 15,
        "embedding": {"dim": cfg.embedding_dim, "source": "PCA of the int8 student's pooled penultimate features, "
                      "fitted on calibration frames only; on the device one extra linear layer after pooling",
                      "explained_variance": projection.explained_variance},
        "latency_ms": latency,
        "latency_note": f"batch 1, median of {cfg.latency_repeats} runs, ONNX Runtime CPU, {cfg.threads} threads, "
                        "on the build machine",
        "machine": {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                    "onnxruntime": onnxruntime.__version__},
        "dataset": {**dataset, "scenes": len(sources), "calibration_scenes": int(n_calib)},
        "seed": cfg.seed,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    profile = FrameProfile(
        label=label, scene=cat["scene"], calib=calib,
        student_topk_prob=topk_prob, student_topk_class=top, student_raw_conf=raw_conf,
        student_correct=correct, student_fp32_correct=cat["student_fp32_pred"] == label,
        server_bytes=cat["server_bytes"], server_pred=cat["server_pred"], server_conf=cat["server_conf"],
        server_correct=cat["server_pred"] == label[:, None], teacher_bytes=cat["teacher_bytes"],
        teacher_pred=cat["teacher_pred"], teacher_conf=cat["teacher_conf"],
        teacher_correct=cat["teacher_pred"] == label, embedding=embedding, meta=meta,
        device_arrays=projection.arrays())
    log("training the distilled-confidence head (cross-fitted)")
    profile = fit_distilled(profile, cfg.test_fraction, cfg.split_seed, seed=cfg.seed)
    profile.meta["accuracy"] = profile.accuracy_table()
    profile.meta["build_seconds"] = round(time.time() - t_start, 1)
    profile.save(out)
    return profile

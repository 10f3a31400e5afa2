"""Build a FrameProfile: photos -> clips -> every model's answer on every frame under every action.

Steps (each cached in ``<out>.parts/`` so an interrupted build restarts where it stopped):
1. export the pretrained student, server (one per offload resolution) and teacher to ONNX;
2. render the calibration clips and quantize the student to int8 on them (never on evaluation frames);
3. per chunk of photos: render clips, run the int8 and float32 student on the raw frame, JPEG-encode the frame at
   each offload resolution and run the server on the decoded JPEG, JPEG-encode the full frame for the teacher;
4. fit the temperature on the calibration frames, keep the calibrated top-k, measure batch-1 latencies, save.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from .calibration import ece, fit_temperature
from .frames import ClipSpec, LabelledImage, load_labelled_images, render_clip
from .models import (OnnxClassifier, decode_jpeg, export_onnx, jpeg_bytes, resize_crop, softmax, to_input,
                     weights_sha256)
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
    teacher_flip: bool = True  # horizontal-flip test-time augmentation (mean of the two softmaxes)
    jpeg_quality: int = 85
    top_k: int = 5
    clip: ClipSpec = field(default_factory=ClipSpec)
    calib_fraction: float = 0.1  # share of photos whose clips calibrate the student (temperature and int8 ranges)
    seed: int = 0
    chunk_photos: int = 25
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

    def to_json(self) -> dict:
        d = asdict(self)
        d["server_resolutions"] = list(self.server_resolutions)
        d["clip"]["capture"] = list(self.clip.capture)
        d["clip"]["zoom_range"] = list(self.clip.zoom_range)
        return d


def _atomic_savez(path: Path, **arrays: NDArray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path)


class _Models:
    """The ONNX sessions of one build, exported (and quantized) once into the work folder."""

    def __init__(self, cfg: BuildConfig, work: Path, calib_images: dict[int, LabelledImage],
                 log: Callable[[str], None]):
        def onnx(name: str, res: int) -> Path:
            path = work / f"{name}-{res}.onnx"
            if not path.exists():
                log(f"exporting {name} at {res}px to ONNX")
                export_onnx(name, res, path)
            return path

        self.student_fp32 = OnnxClassifier(onnx(cfg.student, cfg.student_res), cfg.threads)
        int8_path = work / f"{cfg.student}-{cfg.student_res}-int8.onnx"
        if not int8_path.exists():
            log(f"quantizing the student to int8 on {len(calib_images)} calibration clips")
            x = np.stack([to_input(resize_crop(f, cfg.student_res))
                          for cid, im in calib_images.items() for f in _clip_frames(im, cid, cfg)])
            quantize_student(self.student_fp32.path, x, int8_path)
        self.student = OnnxClassifier(int8_path, cfg.threads)
        self.server = [OnnxClassifier(onnx(cfg.server, r), cfg.threads) for r in cfg.server_resolutions]
        self.teacher = OnnxClassifier(onnx(cfg.teacher, cfg.teacher_res), cfg.threads)


def _clip_frames(im: LabelledImage, clip_id: int, cfg: BuildConfig) -> list[Image.Image]:
    with Image.open(im.path) as img:
        return list(render_clip(img, cfg.clip, seed=cfg.seed * 1_000_003 + clip_id))


def _process_chunk(images: list[LabelledImage], clip_ids: list[int], models: _Models, cfg: BuildConfig) -> dict:
    frames, labels, clips = [], [], []
    for im, cid in zip(images, clip_ids):
        fs = _clip_frames(im, cid, cfg)
        frames += fs
        labels += [im.label] * len(fs)
        clips += [cid] * len(fs)
    labels_a = np.array(labels)
    student_x = np.stack([to_input(resize_crop(f, cfg.student_res)) for f in frames])
    out: dict[str, NDArray] = {
        "label": labels_a, "clip": np.array(clips),
        "student_logits": models.student.logits(student_x).astype(np.float32),
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


def build_profile(images_dir: str | os.PathLike, out: str | os.PathLike, cfg: BuildConfig = BuildConfig(),
                  labels_tsv: str | os.PathLike | None = None, progress: bool = True,
                  log: Callable[[str], None] = print) -> FrameProfile:
    """Build, save (atomically) and return the frame profile of the photos in ``images_dir``."""
    t_start = time.time()
    out = Path(out)
    work = out.with_name(out.name + ".parts")
    work.mkdir(parents=True, exist_ok=True)
    stamp = work / "config.json"
    cfg_json = json.dumps(cfg.to_json(), sort_keys=True)
    if stamp.exists() and stamp.read_text() != cfg_json:
        raise ValueError(f"{work} holds a build with another configuration; delete it or use another output path")
    stamp.write_text(cfg_json)

    images = load_labelled_images(images_dir, labels_tsv)
    if cfg.max_images is not None:
        images = images[: cfg.max_images]
    rng = np.random.default_rng(cfg.seed)
    n_calib = max(1, int(round(cfg.calib_fraction * len(images))))
    calib_idx = set(rng.permutation(len(images))[:n_calib].tolist())
    models = _Models(cfg, work, {i: images[i] for i in sorted(calib_idx)}, log)

    chunks = [list(range(i, min(i + cfg.chunk_photos, len(images)))) for i in range(0, len(images), cfg.chunk_photos)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(images) * cfg.clip.frames, unit="frame", desc="profiling")
    parts = []
    for c, idx in enumerate(chunks):
        path = work / f"chunk_{c:05d}.npz"
        if not path.exists():
            _atomic_savez(path, **_process_chunk([images[i] for i in idx], idx, models, cfg))
        with np.load(path) as data:
            parts.append({k: data[k] for k in data.files})
        if bar is not None:
            bar.update(len(idx) * cfg.clip.frames)
    if bar is not None:
        bar.close()
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    label = cat["label"]
    calib = np.isin(cat["clip"], sorted(calib_idx))
    logits = cat["student_logits"]
    temperature = fit_temperature(logits[calib], label[calib])
    p_raw = softmax(logits)
    p_cal = softmax(logits, temperature)
    top = np.argsort(-p_cal, axis=1)[:, : cfg.top_k]
    student_pred = top[:, 0]
    correct = student_pred == label
    raw_conf = p_raw.max(1)
    ev = ~calib
    latency = {f"student_int8@{cfg.student_res}": models.student.latency_ms(cfg.latency_repeats),
               f"student_fp32@{cfg.student_res}": models.student_fp32.latency_ms(cfg.latency_repeats)}
    for res, clf in zip(cfg.server_resolutions, models.server):
        latency[f"server@{res}"] = clf.latency_ms(cfg.latency_repeats)
    latency[f"teacher@{cfg.teacher_res}"] = models.teacher.latency_ms(cfg.latency_repeats) * (2 if cfg.teacher_flip else 1)
    import onnxruntime

    meta = {
        "build": cfg.to_json(),
        "models": {"student": cfg.student, "server": cfg.server, "teacher": cfg.teacher},
        "weights_sha256": {m: weights_sha256(m) for m in sorted({cfg.student, cfg.server, cfg.teacher})},
        "student_res": cfg.student_res, "server_resolutions": list(cfg.server_resolutions),
        "teacher_res": cfg.teacher_res, "teacher_flip": cfg.teacher_flip, "jpeg_quality": cfg.jpeg_quality,
        "capture": list(cfg.clip.capture), "frames_per_clip": cfg.clip.frames,
        "temperature": temperature,
        "ece_before": ece(raw_conf[ev], correct[ev]), "ece_after": ece(p_cal.max(1)[ev], correct[ev]),
        "ece_bins": 15,
        "latency_ms": latency,
        "latency_note": "batch 1, median of %d runs, ONNX Runtime CPU, %d threads, on the build machine"
                        % (cfg.latency_repeats, cfg.threads),
        "machine": {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                    "onnxruntime": onnxruntime.__version__},
        "dataset": {"images_dir": str(Path(images_dir)), "photos": len(images), "calibration_photos": n_calib},
        "seed": cfg.seed, "build_seconds": round(time.time() - t_start, 1),
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    profile = FrameProfile(
        label=label, clip=cat["clip"], calib=calib,
        student_topk_prob=np.take_along_axis(p_cal, top, 1), student_topk_class=top, student_raw_conf=raw_conf,
        student_correct=correct, student_fp32_correct=cat["student_fp32_pred"] == label,
        server_bytes=cat["server_bytes"], server_pred=cat["server_pred"], server_conf=cat["server_conf"],
        server_correct=cat["server_pred"] == label[:, None], teacher_bytes=cat["teacher_bytes"],
        teacher_pred=cat["teacher_pred"], teacher_conf=cat["teacher_conf"],
        teacher_correct=cat["teacher_pred"] == label, meta=meta)
    profile.meta["accuracy"] = profile.accuracy_table()
    profile.save(out)
    return profile

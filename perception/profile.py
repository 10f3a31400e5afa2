"""``FrameProfile``: every frame's outcome under every action, measured once by running the real models.

The environment replays this table; it never invents an accuracy. Arrays are over N frames (scenes of consecutive
frames, stored scene after scene, lengths varying); R is the number of offload resolutions, k the student's top-k,
D the embedding size.

Format history: 1 = 8-frame clips at an implied 30 fps, no embedding; 2 = scenes of seconds rendered at
``meta['fps']``, plus ``embedding``, ``distilled`` and the device-side arrays (projection and distilled head).
Version 1 files still load (without embedding and distilled predictions).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from offload_common.files import atomic_path, check_input_path

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
NUM_CLASSES = 1000  # ImageNet-1k
DEVICE_PREFIX = "device__"


class ProfileFormatError(ValueError):
    """A profile file is missing arrays, has wrong shapes or another format version; the message says which."""


def _first(mask: NDArray) -> str:
    """Where the first True of ``mask`` is, as 'frame i' (and column j for 2-D arrays)."""
    idx = np.argwhere(mask)[0]
    return f"frame {idx[0]}" + (f", column {idx[1]}" if len(idx) > 1 else "")


def _check_kind(name: str, arr: NDArray, target: np.dtype) -> None:
    """Refuse values the stored dtype would silently change: booleans must be booleans (0/1; casting 0.4 or 7 to
    bool gives True), integers must be whole and fit the stored width, and every array must be numeric."""
    if arr.dtype.kind not in "biuf":
        raise ProfileFormatError(f"array {name!r} has dtype {arr.dtype}, expected numbers ({target})")
    if arr.size == 0:
        return
    if target.kind == "b":
        if arr.dtype.kind != "b":
            off = (arr != 0) & (arr != 1)
            if off.any():
                raise ProfileFormatError(f"array {name!r} must hold booleans (True/False or 0/1), but holds "
                                         f"{arr[tuple(np.argwhere(off)[0])]!r} at {_first(off)} "
                                         f"({int(off.sum())} value(s) not 0/1)")
    elif target.kind in "iu":
        if arr.dtype.kind == "f":
            off = ~np.isfinite(arr) | (arr != np.round(arr))
            if off.any():
                raise ProfileFormatError(f"array {name!r} must hold whole numbers ({target}), but holds "
                                         f"{arr[tuple(np.argwhere(off)[0])]!r} at {_first(off)}")
        if arr.dtype.kind != "b":
            info = np.iinfo(target)
            off = (arr < info.min) | (arr > info.max)
            if off.any():
                raise ProfileFormatError(f"array {name!r} holds {arr[tuple(np.argwhere(off)[0])]!r} at "
                                         f"{_first(off)}, outside the range of its stored type {target} "
                                         f"([{info.min}, {info.max}])")


@dataclass(frozen=True, eq=False)
class FrameProfile:
    """Per-frame outcomes of local, offload-at-r and teacher actions (see the module docstring for shapes).

    Attributes:
        label: [N] true ImageNet-1k class (for video: the teacher's answer, see ``meta['dataset']``).
        scene: [N] scene id (one scene per source photo or video segment); a scene's frames are contiguous and in
            order. Stored as ``clip`` by profiles written before the rename (they still load).
        calib: [N] True for frames of calibration scenes (temperature, int8 ranges, embedding projection).
        student_topk_prob: [N, k] calibrated probabilities of the student's top-k classes, descending.
        student_topk_class: [N, k] those classes.
        student_raw_conf: [N] the student's top-1 softmax probability before temperature scaling.
        student_correct: [N] the int8 student's top-1 is the label.
        student_fp32_correct: [N] the float32 student (same resolution) would have been right (for reference).
        server_bytes: [N, R] JPEG size of the frame at each offload resolution.
        server_pred / server_conf / server_correct: [N, R] the edge server's answer on that JPEG.
        teacher_bytes: [N] JPEG size of the full capture frame.
        teacher_pred / teacher_conf / teacher_correct: [N] the teacher's answer on it.
        embedding: [N, D] float16 compact embedding of the student's features (format 2; None in format 1).
        distilled: [N, R + 2] distilled P(right) of student, server at each resolution, teacher (cross-fitted;
            format 2; None in format 1).
        device_arrays: what a device needs beside its student: embedding projection and distilled head weights.
        meta: models, weight hashes, resolutions, JPEG quality, temperature, ECE, latencies, dataset, seed, ...
    """

    label: NDArray[np.int16]
    scene: NDArray[np.int32]
    calib: NDArray[np.bool_]
    student_topk_prob: NDArray[np.float32]
    student_topk_class: NDArray[np.int16]
    student_raw_conf: NDArray[np.float32]
    student_correct: NDArray[np.bool_]
    student_fp32_correct: NDArray[np.bool_]
    server_bytes: NDArray[np.int32]
    server_pred: NDArray[np.int16]
    server_conf: NDArray[np.float32]
    server_correct: NDArray[np.bool_]
    teacher_bytes: NDArray[np.int32]
    teacher_pred: NDArray[np.int16]
    teacher_conf: NDArray[np.float32]
    teacher_correct: NDArray[np.bool_]
    embedding: NDArray[np.float16] | None = None
    distilled: NDArray[np.float32] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    device_arrays: dict[str, NDArray] = field(default_factory=dict)

    _DTYPES = {"label": np.int16, "scene": np.int32, "calib": np.bool_, "student_topk_prob": np.float32,
               "student_topk_class": np.int16, "student_raw_conf": np.float32, "student_correct": np.bool_,
               "student_fp32_correct": np.bool_,
               "server_bytes": np.int32, "server_pred": np.int16, "server_conf": np.float32,
               "server_correct": np.bool_, "teacher_bytes": np.int32, "teacher_pred": np.int16,
               "teacher_conf": np.float32, "teacher_correct": np.bool_}
    _OPTIONAL = ("embedding", "distilled")
    _PER_RES = ("server_bytes", "server_pred", "server_conf", "server_correct")
    _TOPK = ("student_topk_prob", "student_topk_class")

    def __post_init__(self) -> None:
        n = len(self.label)
        res = self.meta.get("server_resolutions")
        r = len(res) if res is not None else np.shape(self.server_bytes)[1] if np.ndim(self.server_bytes) == 2 else 0
        for name, dtype in self._DTYPES.items():
            arr = np.asarray(getattr(self, name))
            if name in self._PER_RES:
                want = (n, r)
            elif name in self._TOPK:
                want = (n, arr.shape[1] if arr.ndim == 2 else -1)
            else:
                want = (n,)
            if arr.shape != want or (name in self._TOPK and arr.shape[1] < 1):
                raise ProfileFormatError(f"array {name!r} has shape {arr.shape}, expected {want} "
                                         f"(N={n} frames, R={r} resolutions)")
            _check_kind(name, arr, np.dtype(dtype))
            object.__setattr__(self, name, arr.astype(dtype, copy=False))
        if n and np.any(np.diff(self.scene) < 0):
            raise ProfileFormatError("frames must be stored scene by scene (scene ids non-decreasing)")
        for name, want_cols in (("embedding", None), ("distilled", r + 2)):
            arr = getattr(self, name)
            if arr is None:
                continue
            _check_kind(name, np.asarray(arr), np.dtype(np.float32))
            arr = np.asarray(arr, np.float16 if name == "embedding" else np.float32)
            if arr.ndim != 2 or len(arr) != n or (want_cols is not None and arr.shape[1] != want_cols):
                raise ProfileFormatError(f"array {name!r} has shape {arr.shape}, expected ({n}, "
                                         f"{want_cols if want_cols is not None else 'D'})")
            object.__setattr__(self, name, arr)
        self._check_values()

    def _check_values(self) -> None:
        """Values a profile can hold: finite, probabilities in [0, 1], classes in range, bytes positive."""
        def bad(name: str, what: str, mask: NDArray) -> None:
            idx = np.flatnonzero(np.asarray(mask).reshape(len(mask), -1).any(1)) if len(mask) else []
            if len(idx):
                raise ProfileFormatError(f"array {name!r}: {what} at {len(idx)} frame(s), first frame {idx[0]}")

        for name in ("student_topk_prob", "student_raw_conf", "server_conf", "teacher_conf", "distilled"):
            arr = getattr(self, name)
            if arr is not None:
                bad(name, "non-finite values (NaN/inf)", ~np.isfinite(arr))
                bad(name, "probabilities outside [0, 1]", (arr < 0) | (arr > 1))
        if self.embedding is not None:
            bad("embedding", "non-finite values (NaN/inf)", ~np.isfinite(self.embedding))
        if self.top_k > 1:
            bad("student_topk_prob", "top-k probabilities not in descending order",
                np.diff(self.student_topk_prob, axis=1) > 1e-6)
        bad("student_topk_prob", "top-k probabilities summing above 1", self.student_topk_prob.sum(1) > 1 + 1e-4)
        for name in ("label", "student_topk_class", "server_pred", "teacher_pred"):
            arr = getattr(self, name)
            bad(name, f"classes outside [0, {NUM_CLASSES})", (arr < 0) | (arr >= NUM_CLASSES))
        for name in ("server_bytes", "teacher_bytes"):
            bad(name, "JPEG sizes <= 0 bytes", getattr(self, name) <= 0)

    # ---- derived views -------------------------------------------------------------------------------------
    @property
    def n_frames(self) -> int:
        return len(self.label)

    @property
    def resolutions(self) -> tuple[int, ...]:
        """Offload resolutions in px, ascending (action r offloads at ``resolutions[r - 1]``)."""
        return tuple(int(r) for r in self.meta["server_resolutions"])

    @property
    def top_k(self) -> int:
        return self.student_topk_prob.shape[1]

    @property
    def fps(self) -> float:
        """Frame rate the scenes were rendered (or the video decoded) at; format 1 implied 30 fps."""
        return float(self.meta.get("fps", 30.0))

    @property
    def n_scenes(self) -> int:
        return len(np.unique(self.scene))

    def scene_lengths(self) -> NDArray[np.int64]:
        """Frames per scene, in stored order."""
        return np.unique(self.scene, return_counts=True)[1]

    def accuracy_table(self) -> dict[str, float]:
        """Accuracy of each action over all frames (calibration frames excluded)."""
        ev = ~self.calib
        out = {"student_int8": float(self.student_correct[ev].mean()),
               "student_fp32": float(self.student_fp32_correct[ev].mean())}
        for j, res in enumerate(self.resolutions):
            out[f"server@{res}"] = float(self.server_correct[ev, j].mean())
        out["teacher"] = float(self.teacher_correct[ev].mean())
        return out

    # ---- selection and splitting ---------------------------------------------------------------------------
    def select_scenes(self, scene_ids: NDArray) -> FrameProfile:
        """A profile of the frames of the given scenes (order kept)."""
        mask = np.isin(self.scene, np.asarray(scene_ids))
        kw = {f.name: (None if getattr(self, f.name) is None else getattr(self, f.name)[mask])
              for f in fields(self) if f.name not in ("meta", "device_arrays")}
        return FrameProfile(**kw, meta=dict(self.meta), device_arrays=dict(self.device_arrays))

    def split(self, test_fraction: float = 0.3, seed: int = 0) -> tuple[FrameProfile, FrameProfile]:
        """(train, test) by scene. Calibration scenes always go to train: they were used to fit the student."""
        train, test = self.split_ids(test_fraction, seed)
        return self.select_scenes(train), self.select_scenes(test)

    def split_ids(self, test_fraction: float = 0.3, seed: int = 0) -> tuple[NDArray, NDArray]:
        """Scene ids of (train, test); the same draw as ``split``."""
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        scenes = np.unique(self.scene)
        calib_scenes = np.unique(self.scene[self.calib])
        eligible = np.setdiff1d(scenes, calib_scenes)
        rng = np.random.default_rng(seed)
        n_test = int(round(test_fraction * len(scenes)))
        n_test = min(max(n_test, 1), len(eligible))
        test = np.sort(rng.permutation(eligible)[:n_test])
        train = np.setdiff1d(scenes, test)
        return train, test

    # ---- persistence ---------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``.npz`` (arrays + JSON metadata), atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {name: getattr(self, name) for name in self._DTYPES}
        arrays.update({name: getattr(self, name) for name in self._OPTIONAL if getattr(self, name) is not None})
        arrays.update({DEVICE_PREFIX + k: np.asarray(v) for k, v in self.device_arrays.items()})
        meta = {"format_version": FORMAT_VERSION, **self.meta}
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, meta_json=np.array(json.dumps(meta)), **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> FrameProfile:
        """Read a profile written by ``save``; raises ProfileFormatError naming the file and what is wrong."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"frame profile {path} does not exist")
        check_input_path(path, "frame profile", "file", "a frame profile .npz file (e.g. "
                         "perception/data/default_profile.npz)")
        if not zipfile.is_zipfile(path):
            raise ProfileFormatError(f"{path}: not a frame profile (an .npz file is a zip archive; this file is not "
                                     "one). Build one with `python train_agent.py profile -o PATH`")
        try:
            with np.load(path, allow_pickle=False) as data:
                contents = {k: data[k] for k in data.files}
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
            raise ProfileFormatError(f"{path}: unreadable frame profile .npz ({exc})") from None
        if "meta_json" not in contents:
            raise ProfileFormatError(f"{path}: missing 'meta_json' (not a FrameProfile file)")
        try:
            meta = json.loads(str(contents.pop("meta_json")))
        except json.JSONDecodeError as exc:
            raise ProfileFormatError(f"{path}: field 'meta_json' is not valid JSON ({exc})") from None
        if not isinstance(meta, dict):
            raise ProfileFormatError(f"{path}: field 'meta_json' must hold a JSON object, got {type(meta).__name__}")
        version = meta.pop("format_version", None)
        if version not in READABLE_VERSIONS:
            raise ProfileFormatError(f"{path}: format_version {version!r}; this code reads {READABLE_VERSIONS}. "
                                     "Rebuild it with `python train_agent.py profile -o PATH`")
        if "scene" not in contents and "clip" in contents:  # written before scenes were called scenes
            contents["scene"] = contents.pop("clip")
        missing = [name for name in cls._DTYPES if name not in contents]
        if missing:
            raise ProfileFormatError(f"{path}: missing arrays {missing}")
        if len(contents["label"]) == 0:
            raise ProfileFormatError(f"{path}: holds no frames")
        device = {k[len(DEVICE_PREFIX):]: v for k, v in contents.items() if k.startswith(DEVICE_PREFIX)}
        try:
            return cls(**{name: contents[name] for name in cls._DTYPES},
                       **{name: contents.get(name) for name in cls._OPTIONAL}, meta=meta, device_arrays=device)
        except ProfileFormatError as exc:
            raise ProfileFormatError(f"{path}: {exc}") from None

    def summary_dict(self) -> dict[str, Any]:
        """Machine-readable summary: sizes, scene durations, embedding, distilled-confidence report, accuracy."""
        lengths = self.scene_lengths()
        m = self.meta
        dist = m.get("distilled", {})
        return {
            "format_version": FORMAT_VERSION if self.embedding is not None else 1,
            "frames": self.n_frames, "scenes": self.n_scenes,
            "photos": m.get("dataset", {}).get("photos"), "videos": m.get("dataset", {}).get("videos"),
            "label_source": m.get("dataset", {}).get("label_source", "dataset"),
            "fps": self.fps, "median_scene_s": float(np.median(lengths) / self.fps),
            "scene_s": {"min": float(lengths.min() / self.fps), "p10": float(np.percentile(lengths, 10) / self.fps),
                        "p90": float(np.percentile(lengths, 90) / self.fps), "max": float(lengths.max() / self.fps)},
            "embedding_dim": None if self.embedding is None else int(self.embedding.shape[1]),
            "resolutions": list(self.resolutions), "top_k": self.top_k,
            "accuracy": self.accuracy_table(),
            "temperature": m.get("temperature"), "ece_before": m.get("ece_before"), "ece_after": m.get("ece_after"),
            "latency_ms": m.get("latency_ms", {}),
            "distilled": {k: v for k, v in dist.items()},
        }

    def summary(self) -> str:
        """A one-screen text summary of the profile (for CLIs and notes)."""
        buf = io.StringIO()
        m = self.meta
        d = self.summary_dict()
        buf.write(f"{self.n_frames} frames in {self.n_scenes} scenes at {self.fps:g} fps (median scene "
                  f"{d['median_scene_s']:.2f} s, {d['scene_s']['min']:.2f}-{d['scene_s']['max']:.2f} s); "
                  f"resolutions {self.resolutions}; top-{self.top_k}; embedding {d['embedding_dim']}\n")
        for name, acc in self.accuracy_table().items():
            buf.write(f"  {name:>14}: accuracy {acc:.3f}\n")
        if "temperature" in m:
            buf.write(f"  temperature {m['temperature']:.3f}; ECE {m['ece_before']:.3f} -> {m['ece_after']:.3f}\n")
        dist = m.get("distilled")
        if dist and "auroc_student_right" in dist:
            buf.write(f"  distilled P(student right) on {dist['test_frames']} test frames: AUROC "
                      f"{dist['auroc_student_right']:.3f} (max prob {dist['auroc_maxprob_student_right']:.3f}), "
                      f"Brier {dist['brier_student_right']:.4f} (max prob {dist['brier_maxprob_student_right']:.4f})\n")
            for name, r in dist.get("remote", {}).items():
                buf.write(f"  distilled P({name} right): AUROC {r['auroc']:.3f} (unconditional 0.5), Brier "
                          f"{r['brier']:.4f} (unconditional {r['brier_unconditional']:.4f})\n")
        return buf.getvalue()

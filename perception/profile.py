"""``FrameProfile``: every frame's outcome under every action, measured once by running the real models.

The environment replays this table; it never invents an accuracy. Arrays are over N frames (clips of K
consecutive frames, stored clip after clip); R is the number of offload resolutions, k the student's top-k.
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

FORMAT_VERSION = 1


class ProfileFormatError(ValueError):
    """A profile file is missing arrays, has wrong shapes or another format version; the message says which."""


@dataclass(frozen=True, eq=False)
class FrameProfile:
    """Per-frame outcomes of local, offload-at-r and teacher actions (see the module docstring for shapes).

    Attributes:
        label: [N] true ImageNet-1k class.
        clip: [N] clip id (one clip per source photo); frames of a clip are contiguous and in order.
        calib: [N] True for frames of calibration clips (used to fit the temperature and the int8 ranges).
        student_topk_prob: [N, k] calibrated probabilities of the student's top-k classes, descending.
        student_topk_class: [N, k] those classes.
        student_raw_conf: [N] the student's top-1 softmax probability before temperature scaling.
        student_correct: [N] the int8 student's top-1 is the label.
        student_fp32_correct: [N] the float32 student (same resolution) would have been right (for reference).
        server_bytes: [N, R] JPEG size of the frame at each offload resolution.
        server_pred / server_conf / server_correct: [N, R] the edge server's answer on that JPEG.
        teacher_bytes: [N] JPEG size of the full capture frame.
        teacher_pred / teacher_conf / teacher_correct: [N] the teacher's answer on it.
        meta: models, weight hashes, resolutions, JPEG quality, temperature, ECE, latencies, dataset, seed, ...
    """

    label: NDArray[np.int16]
    clip: NDArray[np.int32]
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
    meta: dict[str, Any] = field(default_factory=dict)

    _DTYPES = {"label": np.int16, "clip": np.int32, "calib": np.bool_, "student_topk_prob": np.float32,
               "student_topk_class": np.int16, "student_raw_conf": np.float32, "student_correct": np.bool_, "student_fp32_correct": np.bool_,
               "server_bytes": np.int32, "server_pred": np.int16, "server_conf": np.float32,
               "server_correct": np.bool_, "teacher_bytes": np.int32, "teacher_pred": np.int16,
               "teacher_conf": np.float32, "teacher_correct": np.bool_}
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
            object.__setattr__(self, name, arr.astype(dtype, copy=False))
        if n and np.any(np.diff(self.clip) < 0):
            raise ProfileFormatError("frames must be stored clip by clip (clip ids non-decreasing)")

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
    def select_clips(self, clip_ids: NDArray) -> "FrameProfile":
        """A profile of the frames of the given clips (order kept)."""
        mask = np.isin(self.clip, np.asarray(clip_ids))
        kw = {f.name: getattr(self, f.name)[mask] for f in fields(self) if f.name != "meta"}
        return FrameProfile(**kw, meta=dict(self.meta))

    def split(self, test_fraction: float = 0.3, seed: int = 0) -> tuple["FrameProfile", "FrameProfile"]:
        """(train, test) by clip. Calibration clips always go to train: they were used to fit the student."""
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        clips = np.unique(self.clip)
        calib_clips = np.unique(self.clip[self.calib])
        eligible = np.setdiff1d(clips, calib_clips)
        rng = np.random.default_rng(seed)
        n_test = int(round(test_fraction * len(clips)))
        n_test = min(max(n_test, 1), len(eligible))
        test = np.sort(rng.permutation(eligible)[:n_test])
        train = np.setdiff1d(clips, test)
        return self.select_clips(train), self.select_clips(test)

    # ---- persistence ---------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``.npz`` (arrays + JSON metadata), atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {name: getattr(self, name) for name in self._DTYPES}
        meta = {"format_version": FORMAT_VERSION, **self.meta}
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, meta_json=np.array(json.dumps(meta)), **arrays)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FrameProfile":
        """Read a profile written by ``save``; raises ProfileFormatError naming what is wrong."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"frame profile {path} does not exist")
        try:
            with np.load(path, allow_pickle=False) as data:
                contents = {k: data[k] for k in data.files}
        except (zipfile.BadZipFile, ValueError, OSError) as exc:
            raise ProfileFormatError(f"{path}: not a frame profile .npz ({exc})") from None
        if "meta_json" not in contents:
            raise ProfileFormatError(f"{path}: missing 'meta_json' (not a FrameProfile file)")
        meta = json.loads(str(contents.pop("meta_json")))
        version = meta.pop("format_version", None)
        if version != FORMAT_VERSION:
            raise ProfileFormatError(f"{path}: format_version {version!r}, this code reads {FORMAT_VERSION}")
        missing = [name for name in cls._DTYPES if name not in contents]
        if missing:
            raise ProfileFormatError(f"{path}: missing arrays {missing}")
        try:
            return cls(**{name: contents[name] for name in cls._DTYPES}, meta=meta)
        except ProfileFormatError as exc:
            raise ProfileFormatError(f"{path}: {exc}") from None

    def summary(self) -> str:
        """A one-screen text summary of the profile (for CLIs and notes)."""
        buf = io.StringIO()
        m = self.meta
        buf.write(f"{self.n_frames} frames in {len(np.unique(self.clip))} clips; "
                  f"resolutions {self.resolutions}; top-{self.top_k}\n")
        for name, acc in self.accuracy_table().items():
            buf.write(f"  {name:>14}: accuracy {acc:.3f}\n")
        if "temperature" in m:
            buf.write(f"  temperature {m['temperature']:.3f}; ECE {m['ece_before']:.3f} -> {m['ece_after']:.3f}\n")
        return buf.getvalue()

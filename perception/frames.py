"""Video-like frame streams: each labelled photo becomes a clip of K frames along a smooth, seeded camera path.

Consecutive frames share content (a panning, zooming crop window; slowly drifting exposure; blur when the
camera moves fast), so a model's confidence and correctness are correlated over time as in real video. Clips,
not frames, are the unit of train/test splitting.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

IMAGES_ENV = "OFFLOAD_GYM_IMAGES"
SHARED_ENV = "OFFLOAD_GYM_SHARED"
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


@dataclass(frozen=True)
class ClipSpec:
    """How clips are rendered. ``capture`` is the device camera's frame size (width, height)."""

    frames: int = 8
    capture: tuple[int, int] = (448, 336)
    zoom_range: tuple[float, float] = (0.70, 0.98)  # crop window side as a fraction of the largest 4:3 window
    max_pan: float = 0.12  # total pan over a clip as a fraction of the image size
    brightness_drift: float = 0.12  # max relative exposure change over a clip
    blur: bool = True  # blur proportional to camera speed (motion blur stand-in)


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    label: int
    wnid: str


def shared_images_dir() -> Path | None:
    """``$OFFLOAD_GYM_IMAGES``, ``$OFFLOAD_GYM_SHARED/datasets/imagenet-sample`` or ``../shared/...``; None if absent."""
    if os.environ.get(IMAGES_ENV):
        return Path(os.environ[IMAGES_ENV])
    roots = [Path(os.environ[SHARED_ENV])] if os.environ.get(SHARED_ENV) else []
    roots += [Path(__file__).resolve().parents[2] / "shared", Path.cwd().parent / "shared"]
    return next((r / "datasets/imagenet-sample" for r in roots if (r / "datasets/imagenet-sample").is_dir()), None)


def load_labelled_images(images_dir: str | os.PathLike, labels_tsv: str | os.PathLike | None = None) -> list[LabelledImage]:
    """Photos named ``<wnid>_<name>.JPEG`` with labels from ``index<TAB>wnid<TAB>name`` (default: sibling TSV)."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise FileNotFoundError(f"image folder {images_dir} does not exist")
    labels_tsv = Path(labels_tsv) if labels_tsv else images_dir.parent / f"{images_dir.name}-labels.tsv"
    if not labels_tsv.is_file():
        raise FileNotFoundError(f"labels file {labels_tsv} does not exist (expected index<TAB>wnid<TAB>name lines)")
    by_wnid: dict[str, int] = {}
    with labels_tsv.open() as fh:
        for lineno, row in enumerate(csv.reader(fh, delimiter="\t"), 1):
            if not row or row[0].startswith("#") or (lineno == 1 and not row[0].isdigit()):
                continue
            if len(row) < 2 or not row[0].isdigit():
                raise ValueError(f"{labels_tsv}:{lineno}: expected 'index<TAB>wnid<TAB>name', got {row!r}")
            by_wnid[row[1]] = int(row[0])
    out = []
    for p in sorted(images_dir.iterdir()):
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        wnid = p.name.split("_", 1)[0]
        if wnid not in by_wnid:
            raise ValueError(f"{p}: wnid {wnid!r} not found in {labels_tsv}")
        out.append(LabelledImage(p, by_wnid[wnid], wnid))
    if not out:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {images_dir}")
    return out


def _smooth(t: np.ndarray) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(np.pi * t)  # ease-in/ease-out: zero velocity at both ends


def render_clip(img: Image.Image, spec: ClipSpec, seed: int) -> Iterator[Image.Image]:
    """Yield ``spec.frames`` RGB frames of size ``spec.capture`` along a seeded camera path over ``img``."""
    rng = np.random.default_rng(seed)
    img = img.convert("RGB")
    w, h = img.size
    cw, ch = spec.capture
    aspect = cw / ch
    full_w = min(w, h * aspect)  # largest window of the capture aspect that fits
    z0, z1 = rng.uniform(*spec.zoom_range, size=2)
    pan = rng.uniform(-spec.max_pan, spec.max_pan, size=2) * np.array([w, h])
    c_mid = np.array([w, h]) / 2 + rng.uniform(-0.05, 0.05, size=2) * np.array([w, h])
    b0 = rng.uniform(1 - spec.brightness_drift / 2, 1 + spec.brightness_drift / 2)
    b1 = b0 * rng.uniform(1 - spec.brightness_drift, 1 + spec.brightness_drift)
    k = spec.frames
    s = _smooth(np.linspace(0.0, 1.0, k)) if k > 1 else np.zeros(1)
    prev = None
    for i in range(k):
        win_w = full_w * (z0 + (z1 - z0) * s[i])
        win_h = win_w / aspect
        c = c_mid + pan * (s[i] - 0.5)
        cx = float(np.clip(c[0], win_w / 2, w - win_w / 2))
        cy = float(np.clip(c[1], win_h / 2, h - win_h / 2))
        box = (cx - win_w / 2, cy - win_h / 2, cx + win_w / 2, cy + win_h / 2)
        frame = img.resize((cw, ch), Image.BILINEAR, box=box)
        frame = ImageEnhance.Brightness(frame).enhance(float(b0 + (b1 - b0) * s[i]))
        if spec.blur and prev is not None:
            speed = np.hypot(cx - prev[0], cy - prev[1]) / w  # image widths per frame
            radius = float(min(2.0, 60.0 * speed))
            if radius > 0.3:
                frame = frame.filter(ImageFilter.GaussianBlur(radius))
        prev = (cx, cy)
        yield frame


def iter_video_frames(path: str | os.PathLike, every: int = 1) -> Iterator[Image.Image]:
    """Frames of a real video file (needs the optional ``imageio`` with a video plugin): the door to real video."""
    try:
        import imageio.v3 as iio
    except ImportError as exc:  # optional dependency
        raise ImportError("reading video files needs imageio[pyav]: pip install 'imageio[pyav]'") from exc
    for i, arr in enumerate(iio.imiter(path)):
        if i % every == 0:
            yield Image.fromarray(arr).convert("RGB")

"""Video-like frame streams: each labelled photo becomes a scene of a few seconds along a seeded hand-held camera path.

Consecutive frames share content (a panning, zooming crop window; drifting exposure; shake, motion blur, sensor
noise), so a model's confidence and correctness are correlated over time as in real video, for seconds: the
temporal locality that answer reuse lives on. Scenes, not frames, are the unit of train/test splitting. Real
video files enter through ``iter_video_frames``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from offload_common.files import check_input_path, shared_data_dir

IMAGES_ENV = "OFFLOAD_GYM_IMAGES"
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


@dataclass(frozen=True)
class SceneSpec:
    """How a photo becomes a scene: a few seconds of hand-held video of the same object, rendered at ``fps``.

    Scene lengths are log-normal (median ``median_s``, log-sd ``length_sigma``, clipped to [min_s, max_s]) so that
    no fixed period exists. The camera moves as real hand-held footage does: a pan whose velocity follows an
    Ornstein-Uhlenbeck process (smooth, with changes of direction), a zoom that wanders inside ``zoom_range`` (when
    zoomed in, the pan can take the object partly out of view and back), per-frame shake, slowly drifting exposure,
    motion blur proportional to the camera's speed and sensor noise. All rates are per second, so changing ``fps``
    samples the same motion more or less densely. ``capture`` is the device camera's frame size (width, height).
    """

    fps: float = 15.0
    median_s: float = 2.2
    length_sigma: float = 0.4
    min_s: float = 1.0
    max_s: float = 8.0
    capture: tuple[int, int] = (448, 336)
    zoom_range: tuple[float, float] = (0.55, 0.98)  # crop window side as a fraction of the largest 4:3 window
    pan_speed: float = 0.16  # stationary sd of the pan velocity, image widths per second
    pan_tau_s: float = 0.8  # correlation time of the pan velocity
    zoom_speed: float = 0.12  # sd of the zoom drift per sqrt(second)
    shake: float = 0.003  # per-frame jitter sd, image widths
    exposure_drift: float = 0.06  # sd of the exposure drift per sqrt(second) (relative)
    blur: bool = True  # blur proportional to camera speed (motion blur)
    noise: float = 2.0  # sensor noise sd, in 0..255 levels

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise ValueError(f"SceneSpec.fps must be > 0, got {self.fps}")
        if not 0 < self.min_s <= self.median_s <= self.max_s:
            raise ValueError(f"SceneSpec lengths must satisfy 0 < min_s <= median_s <= max_s, got "
                             f"{self.min_s}, {self.median_s}, {self.max_s}")
        if not 0 < self.zoom_range[0] <= self.zoom_range[1] <= 1:
            raise ValueError(f"SceneSpec.zoom_range must be within (0, 1] and ascending, got {self.zoom_range}")

    def n_frames(self, rng: np.random.Generator) -> int:
        """Draw a scene length in frames."""
        seconds = float(np.clip(self.median_s * np.exp(self.length_sigma * rng.standard_normal()),
                                self.min_s, self.max_s))
        return max(1, int(round(seconds * self.fps)))


def render_scene(img: Image.Image, spec: SceneSpec, seed: int, n_frames: int | None = None) -> Iterator[Image.Image]:
    """Yield the RGB frames (size ``spec.capture``) of one scene over ``img`` along a seeded hand-held camera path.

    ``n_frames`` defaults to a length drawn by ``spec.n_frames`` from the same seed.
    """
    rng = np.random.default_rng(seed)
    drawn = spec.n_frames(rng)  # always drawn, so the path of a seed does not depend on n_frames being given
    k = drawn if n_frames is None else int(n_frames)
    img = img.convert("RGB")
    w, h = img.size
    cw, ch = spec.capture
    aspect = cw / ch
    full_w = min(w, h * aspect)  # largest window of the capture aspect that fits
    dt = 1.0 / spec.fps
    rho = float(np.exp(-dt / spec.pan_tau_s))
    vel = rng.standard_normal(2) * spec.pan_speed * w
    pos = np.array([w, h]) / 2 + rng.uniform(-0.08, 0.08, size=2) * np.array([w, h])
    zoom = rng.uniform(*spec.zoom_range)
    expo = rng.uniform(0.92, 1.08)
    noise_bank = [rng.normal(0.0, spec.noise, (ch, cw, 3)).astype(np.float32) for _ in range(3)] if spec.noise > 0 else []
    prev = None
    for i in range(k):
        if i:
            vel = rho * vel + np.sqrt(1 - rho * rho) * rng.standard_normal(2) * spec.pan_speed * w
            pos = pos + vel * dt
            zoom = float(np.clip(zoom + spec.zoom_speed * np.sqrt(dt) * rng.standard_normal(), *spec.zoom_range))
            expo = float(np.clip(expo * np.exp(spec.exposure_drift * np.sqrt(dt) * rng.standard_normal()), 0.7, 1.3))
        win_w = full_w * zoom
        win_h = win_w / aspect
        c = pos + rng.standard_normal(2) * spec.shake * w
        cx = float(np.clip(c[0], win_w / 2, w - win_w / 2))
        cy = float(np.clip(c[1], win_h / 2, h - win_h / 2))
        # a camera that hits the photo's border turns back (keeps the path inside the photo)
        for d, (lo, hi, v) in enumerate(((win_w / 2, w - win_w / 2, cx), (win_h / 2, h - win_h / 2, cy))):
            if (v <= lo and vel[d] < 0) or (v >= hi and vel[d] > 0):
                vel[d] = -vel[d]
            pos[d] = min(max(pos[d], lo), hi)
        box = (cx - win_w / 2, cy - win_h / 2, cx + win_w / 2, cy + win_h / 2)
        frame = img.resize((cw, ch), Image.BILINEAR, box=box)
        if spec.blur and prev is not None:
            speed = np.hypot(cx - prev[0], cy - prev[1]) / w  # image widths per frame
            radius = float(min(2.5, 40.0 * speed))
            if radius > 0.3:
                frame = frame.filter(ImageFilter.GaussianBlur(radius))
        prev = (cx, cy)
        arr = np.asarray(frame, np.float32) * expo
        if noise_bank:
            arr += noise_bank[int(rng.integers(len(noise_bank)))]
        yield Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8))


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    label: int
    wnid: str


def shared_images_dir() -> Path | None:
    """``$OFFLOAD_GYM_IMAGES``, ``$OFFLOAD_GYM_SHARED/datasets/imagenet-sample`` or ``../shared/...``
    (``offload_common.files.shared_data_dir``); None if absent."""
    return shared_data_dir("datasets/imagenet-sample", IMAGES_ENV)


def load_labelled_images(images_dir: str | os.PathLike, labels_tsv: str | os.PathLike | None = None) -> list[LabelledImage]:
    """Photos named ``<wnid>_<name>.JPEG`` with labels from ``index<TAB>wnid<TAB>name`` (default: sibling TSV)."""
    images_dir = Path(images_dir)
    if not images_dir.exists():
        raise FileNotFoundError(f"image folder {images_dir} does not exist")
    check_input_path(images_dir, "image folder", "folder", "a folder of <wnid>_<name>.JPEG photos")
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


def check_images_decode(images: Sequence[LabelledImage]) -> None:
    """Decode every photo fully before any model work, so a corrupt or truncated file is named at once (rather than
    failing minutes into a build with a traceback)."""
    for item in images:
        try:
            with Image.open(item.path) as img:
                img.load()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise ValueError(f"{item.path}: cannot be decoded as an image ({exc}); remove or replace the file") from None


class VideoDecodeError(ValueError):
    """A video file that cannot be opened or decoded; the message names the file and the cause."""


def iter_video_frames(path: str | os.PathLike, fps: float | None = None) -> Iterator[Image.Image]:
    """RGB frames of a real video file decoded with PyAV, resampled to ``fps`` (None: every frame).

    Resampling keeps the frame nearest each tick of the target clock, so a 30 fps file read at 15 fps yields every
    second frame; the file's own timestamps decide, not its nominal rate.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file {path} does not exist")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoDecodeError(f"{path}: cannot open as a video ({exc})") from None
    with container:
        if not container.streams.video:
            raise VideoDecodeError(f"{path}: holds no video stream")
        stream = container.streams.video[0]
        next_t = 0.0
        n = 0
        try:
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else n / float(stream.average_rate or 30)
                n += 1
                if fps is not None:
                    if t + 0.5 / fps < next_t:
                        continue
                    next_t += 1.0 / fps
                yield frame.to_image().convert("RGB")
        except av.error.FFmpegError as exc:
            raise VideoDecodeError(f"{path}: decoding failed after {n} frames ({exc})") from None
    if n == 0:
        raise VideoDecodeError(f"{path}: no frame could be decoded")

"""Real models on real images -> the per-frame profile of every action's outcome that the environment replays.

Public API: ``FrameProfile`` (the table, with save/load/split), ``build_profile`` and ``BuildConfig`` (run the
pretrained student/server/teacher on video-like scenes of photos), ``DEFAULT_PROFILE`` (path of the committed
profile built from ../shared/datasets/imagenet-sample), calibration helpers and the int8 quantizer.
"""

from __future__ import annotations

from pathlib import Path

from .calibration import ece, fit_temperature, plot_reliability
from .frames import (
    SceneSpec,
    VideoDecodeError,
    iter_video_frames,
    load_labelled_images,
    render_scene,
    shared_images_dir,
)
from .profile import FrameProfile, ProfileFormatError

DEFAULT_PROFILE = Path(__file__).resolve().parent / "data" / "default_profile.npz"
# the int8 student (with its pooled-features output) that built DEFAULT_PROFILE: what the device runs
DEFAULT_STUDENT = Path(__file__).resolve().parent / "data" / "student_int8.onnx"

__all__ = ["DEFAULT_PROFILE", "DEFAULT_STUDENT", "BuildConfig", "SceneSpec", "VideoDecodeError", "iter_video_frames",
           "FrameProfile", "ProfileFormatError", "build_profile", "ece", "fit_temperature", "load_labelled_images",
           "plot_reliability", "render_scene", "shared_images_dir"]


def __getattr__(name: str):
    # the build pulls in PyTorch and ONNX Runtime's quantizer: import it only when asked for
    if name in ("build_profile", "BuildConfig"):
        from . import build

        return getattr(build, name)
    raise AttributeError(name)

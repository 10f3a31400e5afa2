"""Temperature scaling (Guo et al., 2017) and expected calibration error: the confidence CBO thresholds must be honest."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from offload_common.files import atomic_path


def nll(logits: NDArray, labels: NDArray, temperature: float) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits / temperature)``."""
    z = np.asarray(logits, np.float64) / temperature
    m = z.max(axis=1, keepdims=True)
    lse = (m[:, 0] + np.log(np.exp(z - m).sum(axis=1)))
    return float(np.mean(lse - z[np.arange(len(z)), labels]))


def fit_temperature(logits: NDArray, labels: NDArray, lo: float = 0.05, hi: float = 20.0, iters: int = 80) -> float:
    """Temperature minimising NLL on a calibration set (golden-section search on log T; NLL is unimodal in T)."""
    if len(logits) == 0:
        raise ValueError("fit_temperature needs at least one calibration example")
    a, b = np.log(lo), np.log(hi)
    g = (np.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = nll(logits, labels, np.exp(c)), nll(logits, labels, np.exp(d))
    for _ in range(iters):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = nll(logits, labels, np.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = nll(logits, labels, np.exp(d))
    return float(np.exp((a + b) / 2))


def reliability(confidence: NDArray, correct: NDArray, bins: int = 15) -> tuple[NDArray, NDArray, NDArray]:
    """Per equal-width confidence bin: mean confidence, accuracy and count."""
    confidence = np.asarray(confidence, np.float64)
    correct = np.asarray(correct, np.float64)
    idx = np.clip((confidence * bins).astype(int), 0, bins - 1)
    count = np.bincount(idx, minlength=bins).astype(float)
    conf = np.bincount(idx, confidence, minlength=bins) / np.maximum(count, 1)
    acc = np.bincount(idx, correct, minlength=bins) / np.maximum(count, 1)
    return conf, acc, count


def ece(confidence: NDArray, correct: NDArray, bins: int = 15) -> float:
    """Expected calibration error: count-weighted mean |accuracy - confidence| over equal-width bins."""
    conf, acc, count = reliability(confidence, correct, bins)
    return float(np.sum(count * np.abs(acc - conf)) / max(count.sum(), 1))



def plot_reliability(conf_before: NDArray, conf_after: NDArray, correct: NDArray, out: str | os.PathLike,
                     temperature: float, bins: int = 15) -> Path:
    """Reliability diagram (accuracy vs confidence per bin) before and after temperature scaling, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharey=True)
    for ax, conf, title in ((axes[0], conf_before, "raw softmax"), (axes[1], conf_after, f"temperature T={temperature:.3f}")):
        c, a, n = reliability(conf, correct, bins)
        centers = (np.arange(bins) + 0.5) / bins
        ax.bar(centers, np.where(n > 0, a, 0), width=1 / bins, edgecolor="k", alpha=0.7, label="accuracy")
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
        ax.scatter(c[n > 0], a[n > 0], s=12, c="C3", zorder=3, label="(mean conf, acc)")
        ax.set_title(f"{title}: ECE {ece(conf, correct, bins):.3f}")
        ax.set_xlabel("confidence")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("accuracy")
    axes[0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return out

"""A compact per-frame embedding: the student's pooled penultimate features projected to a few dimensions.

The projection is PCA fitted on calibration frames only. On a device it is one extra linear layer after the
student's global pooling (``(features - mean) @ components``), which an NPU runs as part of the student's own
forward pass; cosine similarity between two embeddings then tells "same scene as the frame whose answer I hold"
from "new scene".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from offload_common.vision import project


@dataclass(frozen=True)
class Projection:
    """Centre and project features: ``(x - mean) @ components`` ([F] and [F, D])."""

    mean: NDArray[np.float32]
    components: NDArray[np.float32]
    explained_variance: float

    def apply(self, features: NDArray) -> NDArray[np.float32]:
        """Project [N, F] features to [N, D] embeddings (float32)."""
        return project(features, self.mean, self.components)

    def arrays(self) -> dict[str, NDArray]:
        """The arrays a device needs (stored in the profile beside the per-frame arrays)."""
        return {"embed_mean": self.mean, "embed_components": self.components}


def fit_projection(features: NDArray, dim: int) -> Projection:
    """PCA of ``features`` [N, F] to ``dim`` components (N >= 2); sign of each component fixed for determinism."""
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"fit_projection needs at least 2 feature rows, got shape {x.shape}")
    dim = min(dim, x.shape[1], len(x))
    mean = x.mean(0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    comps = vt[:dim].T
    comps *= np.sign(comps[np.abs(comps).argmax(0), np.arange(dim)])  # largest entry of each component positive
    var = s ** 2
    return Projection(mean.astype(np.float32), comps.astype(np.float32), float(var[:dim].sum() / var.sum()))


def cosine(a: NDArray, b: NDArray) -> NDArray[np.float64]:
    """Row-wise cosine similarity of two [N, D] arrays (0 where either row is all zero)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return np.where(den > 0, (a * b).sum(-1) / np.where(den > 0, den, 1.0), 0.0)

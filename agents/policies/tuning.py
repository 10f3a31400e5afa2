"""Grid search, the one way every tuned heuristic and reference is fitted (on training data, by the caller's score).

``grid_search`` scores every point of a grid and keeps the best (the first best on ties, in grid order);
``coordinate_search`` runs it stage by stage, each stage's best values fixed for the next. Each returns the best
policy and one row per scored point (``variant``, the point's parameters, ``score``), which the report keeps.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .base import Policy

TAU_GRID = [float(t) for t in np.round(np.arange(-0.10, 0.41, 0.05), 3)]  # expected-gain thresholds
MIN_COS_GRID = [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95]  # embedding cosine for reusing a cached answer
MAX_AGE_GRID = [0.5, 1.0, 2.0, 4.0, 1e9]  # seconds a cached answer may be reused (1e9: no limit)


def grid_search(score: Callable[[Policy], float], make: Callable[..., Policy], grid: dict[str, Sequence],
                variant: str, fixed: dict[str, Any] | None = None) -> tuple[Policy, list[dict[str, Any]]]:
    """The policy ``make(**point)`` with the highest ``score`` over the grid's product, and every point's row
    (``fixed`` parameters, recorded in each row, are the ones ``make`` holds constant)."""
    rows, best = [], None
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values))
        pol = make(**params)
        s = score(pol)
        rows.append({"variant": variant, **(fixed or {}), **params, "score": s})
        if best is None or s > best[0]:
            best = (s, pol)
    return best[1], rows


def coordinate_search(score: Callable[[Policy], float], make: Callable[..., Policy], start: dict[str, Any],
                      stages: Sequence[dict[str, Sequence]], variant: str) -> tuple[Policy, list[dict[str, Any]]]:
    """``grid_search`` over each stage in turn from the parameters ``start``; a stage's best values stay fixed for
    the stages after it."""
    params = dict(start)
    rows: list[dict[str, Any]] = []
    best: Policy | None = None
    for grid in stages:
        best, more = grid_search(score, lambda **p: make(**{**params, **p}), grid, variant)
        rows += more
        params.update({k: getattr(best, k) for k in grid})
    return best, rows

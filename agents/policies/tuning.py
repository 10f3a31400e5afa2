"""Grid search, the one way every tuned heuristic and reference is fitted (on training data, by the caller's score).

``grid_search`` scores every point of a grid and keeps the best (the first best on ties, in grid order);
``coordinate_search`` runs it stage by stage, each stage's best values fixed for the next. Each returns the best
policy and one row per scored point (``variant``, the point's parameters, ``score``), which the report keeps.

Edges. A grid is a guess at where the optimum lies; an optimum on the grid's edge says the guess was too narrow.
When the best value of a numeric parameter with a search bound (``EXTEND_LIMITS``) is the smallest or largest on
its axis, the axis is extended one step beyond it (the spacing of the two values at that edge, clipped to the
bound) and the new slice of the grid (that value x every value of the other axes) is scored; this repeats until
the optimum is inside the axis, at its bound, or ``MAX_EXTENSIONS`` steps were taken. The returned policy carries
``tuning_edges``: one record per numeric parameter whose best value was on an edge of its axis (before or after
extension), saying which side, the original and the searched range, how many values were added and whether it is
still on the edge (reports keep these records in report_meta.json).

Order by construction. ``coordinate_search`` adds each stage's current values to that stage's axes, so every
stage's best scores at least as well as the point it started from: a search started from another tuned policy's
parameters (link-oracle from cachenet) ends at least as high on the tuning episodes. A point whose policy
describes itself exactly like one already scored (``Policy.describe``: its every parameter) is not scored again.

Scoring in batches. ``score`` is a callable ``score(policy) -> float``; one that also has ``score_many(policies)
-> list[float]`` (one score per policy, in order; e.g. a pool of worker processes, ``agents.evaluation``) is
asked for a whole batch at once: the grid's product first, then each extension slice, every point of the batch
whose description is not scored yet, each description once. The points are then walked in grid order as if
scored one by one, so the rows, their order and the best point (the first best on ties) are those of scoring
sequentially, provided ``score`` is deterministic (every score here is: fixed episodes, policies reset).
"""

from __future__ import annotations

import itertools
import json
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .base import Policy

TAU_GRID = [float(t) for t in np.round(np.arange(-0.10, 0.41, 0.05), 3)]  # expected-gain thresholds
MIN_COS_GRID = [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95]  # embedding cosine for reusing a cached answer
MAX_AGE_GRID = [0.5, 1.0, 2.0, 4.0, 1e9]  # seconds a cached answer may be reused (1e9: no limit)

# Numeric parameters whose axis is extended when the optimum sits on its edge, and the bounds of that extension.
# Gains and bonuses are differences of probabilities (|x| <= 1); slack margins are shares of the deadline; a
# cosine is at most 1; an age or lateness of 1e9 s already means "no limit".
EXTEND_LIMITS: dict[str, tuple[float, float]] = {
    "tau": (-1.0, 1.0), "tau_teacher": (-1.0, 1.0), "margin": (-1.0, 1.0), "min_cos": (0.0, 1.0),
    "max_age_s": (0.1, 1e9), "max_late_s": (0.1, 1e9), "send_bonus": (-1.0, 1.0), "reuse_bonus": (-1.0, 1.0),
}
MAX_EXTENSIONS = 12  # extension steps per search, over all axes


def _numeric(values: Sequence[Any]) -> bool:
    """Whether an axis holds at least two distinct real numbers and nothing else (no bools, None or strings)."""
    return (len(set(values)) >= 2
            and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values))


def _key(pol: Policy) -> str:
    return json.dumps(pol.describe(), sort_keys=True, default=str)


def grid_search(score: Callable[[Policy], float], make: Callable[..., Policy], grid: dict[str, Sequence],
                variant: str, fixed: dict[str, Any] | None = None, *,
                limits: dict[str, tuple[float, float]] | None = None,
                memo: dict[str, float] | None = None) -> tuple[Policy, list[dict[str, Any]]]:
    """The policy ``make(**point)`` with the highest ``score`` over the grid's product, and every point's row
    (``fixed`` parameters, recorded in each row, are the ones ``make`` holds constant).

    Numeric axes named in ``limits`` (default ``EXTEND_LIMITS``) are extended past an edge the optimum sits on
    (module docstring); rows of the added points carry ``"extended": True``. ``memo`` (description -> score) is
    shared by the stages of a ``coordinate_search``. The best policy's ``tuning_edges`` lists the edges hit.
    A ``score`` with ``score_many`` scores each batch (the product, then each extension slice) in one call."""
    limits = EXTEND_LIMITS if limits is None else limits
    memo = {} if memo is None else memo
    axes = {k: list(v) for k, v in grid.items()}
    rows: list[dict[str, Any]] = []
    best: list[Any] = []  # [score, policy, params]

    def run(points: Sequence[tuple], extended: bool) -> None:
        params_list = [dict(zip(axes, values)) for values in points]
        pols = [make(**params) for params in params_list]
        keys = [_key(pol) for pol in pols]
        todo: dict[str, Policy] = {}  # each new description once, its first point's policy, in grid order
        for key, pol in zip(keys, pols):
            if key not in memo:
                todo.setdefault(key, pol)
        memo.update(zip(todo, score_all(score, list(todo.values()))))
        for params, pol, key in zip(params_list, pols, keys):
            s = memo[key]
            rows.append({"variant": variant, **(fixed or {}), **params, "score": s,
                         **({"extended": True} if extended else {})})
            if not best or s > best[0]:
                best[:] = [s, pol, params]

    run(list(itertools.product(*axes.values())), False)
    added: dict[str, dict[str, int]] = {k: {"low": 0, "high": 0} for k in axes}
    for _ in range(MAX_EXTENSIONS):
        step = _extension(axes, best[2], limits)
        if step is None:
            break
        name, value, side = step
        added[name][side] += 1
        axes[name] = sorted([*axes[name], value])
        others = [[value] if k == name else axes[k] for k in axes]
        run(list(itertools.product(*others)), True)
    edges = _edges(grid, axes, best[2], added, limits)
    best[1].tuning_edges = edges
    return best[1], rows


def score_all(score: Callable[[Policy], float], policies: Sequence[Policy]) -> list[float]:
    """``score``'s value of every policy, in order: one ``score.score_many`` call where ``score`` has it, else
    ``score`` on each in turn (module docstring, "Scoring in batches")."""
    if not policies:
        return []
    many = getattr(score, "score_many", None)
    out = [float(s) for s in (many(policies) if many is not None else map(score, policies))]
    if len(out) != len(policies):
        raise ValueError(f"score_many returned {len(out)} scores for {len(policies)} policies")
    return out


def _extension(axes: dict[str, list], params: dict[str, Any], limits: dict[str, tuple[float, float]]
               ) -> tuple[str, float, str] | None:
    """The next value to add: on the first extendable axis whose best value is on an edge below its bound."""
    for name, values in axes.items():
        if name not in limits or not _numeric(values):
            continue
        lo, hi = limits[name]
        v = sorted(set(values))
        if params[name] == v[0] and v[0] > lo:
            return name, float(round(max(lo, v[0] - (v[1] - v[0])), 6)), "low"
        if params[name] == v[-1] and v[-1] < hi:
            return name, float(round(min(hi, v[-1] + (v[-1] - v[-2])), 6)), "high"
    return None


def _edges(grid: dict[str, Sequence], axes: dict[str, list], params: dict[str, Any],
           added: dict[str, dict[str, int]], limits: dict[str, tuple[float, float]]) -> list[dict[str, Any]]:
    """One record per numeric parameter whose best value was on an edge of its original or extended axis."""
    out = []
    for name, original in grid.items():
        if not _numeric(list(original)):
            continue
        value = params[name]
        lo0, hi0 = min(original), max(original)
        lo, hi = min(axes[name]), max(axes[name])
        on_edge = value in (lo, hi)
        n_added = sum(added[name].values())
        if not on_edge and not n_added:
            continue
        side = ("low" if value == lo else "high") if on_edge else max(added[name], key=added[name].get)
        why = ("inside the extended grid" if not on_edge else
               "at its search bound" if name in limits and value in limits[name] else
               "not extended (no search bound for this parameter)" if name not in limits else
               "extension limit reached")
        out.append({"param": name, "value": value, "side": side, "grid": [lo0, hi0], "searched": [lo, hi],
                    "added": n_added, "still_on_edge": on_edge, "why": why})
    return out


def coordinate_search(score: Callable[[Policy], float], make: Callable[..., Policy], start: dict[str, Any],
                      stages: Sequence[dict[str, Sequence]], variant: str) -> tuple[Policy, list[dict[str, Any]]]:
    """``grid_search`` over each stage in turn from the parameters ``start``; a stage's best values stay fixed for
    the stages after it. Each stage's axes include the current value of their parameter (in order, for numeric
    axes), so no stage ends below its starting point."""
    params = dict(start)
    rows: list[dict[str, Any]] = []
    best: Policy | None = None
    memo: dict[str, float] = {}
    edges: list[dict[str, Any]] = []
    for grid in stages:
        grid = {k: _with_value(v, params[k]) if k in params else list(v) for k, v in grid.items()}
        best, more = grid_search(score, lambda **p: make(**{**params, **p}), grid, variant, memo=memo)
        rows += more
        edges = [e for e in edges if e["param"] not in grid] + best.tuning_edges
        params.update({k: getattr(best, k) for k in grid})
    best.tuning_edges = edges
    return best, rows


def _with_value(values: Sequence[Any], value: Any) -> list[Any]:
    """``values`` with ``value`` added if missing (in sorted position when the axis is numeric)."""
    values = list(values)
    if value in values:
        return values
    return sorted([*values, value]) if _numeric([*values, value]) else [*values, value]

"""Heuristics that use the distilled confidence and the answer cache: ``cbo-cond`` and ``cachenet``.

``cbo-cond`` (CBO with conditional accuracy): CBO scores offloading at r with the server's *unconditional*
accuracy a_r, although the frames the student gets wrong are the hard ones for the server too, and always takes
the largest resolution predicted in time. cbo-cond reads, for every action, the distilled estimate of P(that
answer is right | this frame) from the observation (``dist_*``, see ``perception.distill``; for the local answer
the tuning may prefer the calibrated max probability, which ranks the student's answers slightly better), keeps the remote
actions predicted in time (slack >= margin), and takes the one with the largest expected gain over the local
answer if that gain exceeds tau; otherwise the local answer.

``cachenet`` (after CacheNet's idea: reuse a big model's answer while the scene stays the same): if the device
holds a remote answer whose frame is similar enough to this one (embedding cosine >= ``min_cos``), that is young
enough (age <= ``max_age_s``) and, optionally, that the student agrees with (``require_agree``), return it (the
``reuse`` action, no bytes); otherwise refresh with cbo-cond's choice. Two more knobs make the refresh temporal,
since a late answer still serves the rest of its scene: ``refresh_margin`` is the slack margin used when the
cache cannot be reused (below the in-time margin: send even if this frame's answer will be late), and
``wait_pending`` returns the local answer instead of refreshing while an upload is already in flight.

Both observe only fields the device has at decision time; their parameters are tuned by grid search on training
traces and training scenes only (``tune_cbo_cond``, ``tune_cachenet``), like every heuristic and the RL agent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from offload_common.observation import CACHE_AGE_SCALE_S  # the observation's cache_age is seconds / this

from .base import FieldIndex, Policy
from .tuning import MAX_AGE_GRID, MIN_COS_GRID, TAU_GRID, coordinate_search, grid_search


def remote_actions(action_names: list[str]) -> list[str]:
    """Names of the actions that send the frame (offload@r..., teacher), in action order."""
    return [a for a in action_names if a.startswith("offload@") or a == "teacher"]


@dataclass
class CBOCondPolicy(Policy):
    """Largest expected gain among remote actions predicted in time, from the distilled estimates."""

    tau: float = 0.0
    margin: float = 0.0
    use_teacher: bool = True
    local_field: str = "dist_local"  # P(student right): the distilled estimate, or "top1_prob" (calibrated max prob)
    name: str = "cbo-cond"

    def __post_init__(self) -> None:
        self._idx: dict[str, Any] | None = None

    def attach(self, env: Any) -> None:
        self.bind_fields(env.observation_fields, env.action_names)

    def bind_fields(self, fields: list[str], action_names: list[str]) -> None:
        ix = FieldIndex(fields)
        remote = [a for a in remote_actions(action_names) if self.use_teacher or a != "teacher"]
        self._idx = {"local": ix[self.local_field], "dist": ix.many([f"dist_{a}" for a in remote]),
                     "slack": ix.many([f"slack_{a}" for a in remote]),
                     "actions": np.array([action_names.index(a) for a in remote], np.int64),
                     "local_action": action_names.index("local")}

    def gain(self, obs: NDArray[np.float32]) -> NDArray[np.float64]:
        """Expected gain of each remote action over the local answer [B, actions]: P(its answer is right) minus
        P(the student's is)."""
        if self._idx is None:
            raise RuntimeError(f"{type(self).__name__} needs attach(env) or bind_fields(...) before act()")
        return obs[:, self._idx["dist"]].astype(np.float64) - obs[:, [self._idx["local"]]]

    def _refresh(self, obs: NDArray[np.float32], margin: float) -> NDArray[np.int64]:
        gain = self.gain(obs)  # first: it refuses an unbound policy
        ix = self._idx
        gain = np.where(obs[:, ix["slack"]] >= margin, gain, -np.inf)
        best = gain.argmax(1)
        go = gain[np.arange(len(obs)), best] > self.tau
        return np.where(go, ix["actions"][best], ix["local_action"]).astype(np.int64)

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.int64]:
        return self._refresh(obs, self.margin)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "tau": self.tau, "margin": self.margin, "use_teacher": self.use_teacher,
                "local_field": self.local_field}


@dataclass
class CacheNetPolicy(CBOCondPolicy):
    """Reuse the cached answer while the scene stays the same; otherwise cbo-cond's choice."""

    min_cos: float = 0.9
    max_age_s: float = 2.0
    require_agree: bool = False
    refresh_margin: float | None = None  # None: the in-time margin
    wait_pending: bool = False
    name: str = "cachenet"

    def bind_fields(self, fields: list[str], action_names: list[str]) -> None:
        super().bind_fields(fields, action_names)
        ix = FieldIndex(fields)
        self._idx.update({"held": ix["cache_held"], "age": ix["cache_age"], "cos": ix["cos_cache"],
                          "agree": ix["cache_agrees"], "reuse_action": action_names.index("reuse")})
        if self.wait_pending:
            self._idx["pending"] = ix["pending"]

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.int64]:
        action = self._refresh(obs, self.margin if self.refresh_margin is None else self.refresh_margin)
        ix = self._idx
        if self.wait_pending:
            action = np.where(obs[:, ix["pending"]] > 0, ix["local_action"], action)
        return np.where(self.reusable(obs), ix["reuse_action"], action).astype(np.int64)

    def reusable(self, obs: NDArray[np.float32]) -> NDArray[np.bool_]:
        """The reuse test: a remote answer is held, its frame is similar enough and young enough to this one (and,
        if required, the student agrees with it)."""
        ix = self._idx
        reuse = ((obs[:, ix["held"]] > 0.5) & (obs[:, ix["cos"]] >= self.min_cos)
                 & (obs[:, ix["age"]] * CACHE_AGE_SCALE_S <= self.max_age_s + 1e-9))
        if self.require_agree:
            reuse &= obs[:, ix["agree"]] > 0.5
        return reuse

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "min_cos": self.min_cos, "max_age_s": self.max_age_s,
                "require_agree": self.require_agree, "refresh_margin": self.refresh_margin,
                "wait_pending": self.wait_pending}


def tune_cbo_cond(score: Callable[[Policy], float]) -> tuple[CBOCondPolicy, list[dict[str, Any]]]:
    """Grid search of (tau, margin, use_teacher); ``score`` evaluates on training traces and scenes only."""
    grid = {"tau": TAU_GRID, "margin": [0.0, 0.1, 0.2, 0.3], "use_teacher": [False, True],
            "local_field": ["dist_local", "top1_prob"]}
    return grid_search(score, lambda **p: CBOCondPolicy(**p), grid, "cbo-cond")


def tune_cachenet(score: Callable[[Policy], float], base: CBOCondPolicy) -> tuple[CacheNetPolicy, list[dict[str, Any]]]:
    """Coordinate-wise grid search on top of the tuned cbo-cond: the reuse rule, then the refresh knobs, then
    (tau, margin) under them. ``score`` evaluates on training traces and scenes only."""
    start = {"tau": base.tau, "margin": base.margin, "use_teacher": base.use_teacher, "local_field": base.local_field}
    stages = [{"min_cos": MIN_COS_GRID, "max_age_s": MAX_AGE_GRID, "require_agree": [False, True]},
              {"refresh_margin": [None, 0.0, -0.5, -5.0], "wait_pending": [False, True]},
              {"tau": TAU_GRID, "margin": [0.0, 0.1, 0.2, 0.3]}]
    return coordinate_search(score, CacheNetPolicy, start, stages, "cachenet")

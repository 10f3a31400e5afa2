"""Fixed baselines (always-local, always-offload at r, always-teacher, random) and the hindsight oracle."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .base import Policy


class ConstantPolicy(Policy):
    """Always the same action (``0`` local, ``r`` offload at the r-th resolution, ``R + 1`` teacher)."""

    def __init__(self, action: int, name: str):
        self.action = int(action)
        self.name = name

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.int64]:
        return np.full(len(obs), self.action, dtype=np.int64)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "action": self.action}


class RandomPolicy(Policy):
    """Uniformly random actions from a seeded generator (re-seeded by ``reset`` so evaluations repeat)."""

    def __init__(self, n_actions: int, seed: int = 0, name: str = "random"):
        self.n_actions, self.seed, self.name = n_actions, seed, name
        self._rng = np.random.default_rng(seed)

    def reset(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.int64]:
        return self._rng.integers(0, self.n_actions, size=len(obs), dtype=np.int64)


class HindsightOracle(Policy):
    """UPPER REFERENCE, not a deployable policy: knows the true throughput and which answers are right.

    For each frame, using the env's true state: reuse the cached answer when it is right (free); else keep the
    local answer when it is right; else send the smallest remote request that would be back in time with a right
    answer; else, if no upload is in flight and some remote answer on this frame is right, send the smallest such
    request anyway (late for this frame, it refreshes the cache for the frames after); else stay local. Greedy per
    frame (it does not plan the uplink for later frames), so it is a strong reference, not the true optimum.
    """

    name = "oracle"

    def __init__(self) -> None:
        self._env = None

    def attach(self, env: Any) -> None:
        self._env = env
        names = env.action_names
        self._remote = np.array([names.index(a) for a in env.observation_spec.remote_names], np.int64)
        self._reuse = names.index("reuse")

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.int64]:
        if self._env is None:
            raise RuntimeError("HindsightOracle needs attach(env) before act(): it reads the env's true state")
        p = self._env.preview()
        right = p["correct"] & p["can_send"][:, None]
        good = p["on_time"] & right
        best_in_time = np.where(good, p["bytes"], np.inf).argmin(1)
        best_late = np.where(right, p["bytes"], np.inf).argmin(1)
        refresh = right.any(1) & (p["pending"] == 0)
        action = np.where(refresh, self._remote[best_late], 0)
        action = np.where(good.any(1), self._remote[best_in_time], action)
        action = np.where(p["student_correct"], 0, action)
        return np.where(p["reuse_correct"], self._reuse, action).astype(np.int64)


def baseline_policies(action_names: list[str], seed: int = 0) -> dict[str, Policy]:
    """Every fixed baseline for an env with these action names (``local``, ``offload@r``..., ``teacher``,
    ``reuse``): one constant policy per action, random, and the hindsight oracle."""
    out: dict[str, Policy] = {name: ConstantPolicy(a, name) for a, name in enumerate(action_names)}
    out["random"] = RandomPolicy(len(action_names), seed)
    out["oracle"] = HindsightOracle()
    return out

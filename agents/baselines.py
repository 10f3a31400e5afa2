"""Fixed baselines (always-local, always-offload at r, always-teacher, random) and the hindsight oracle."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .policy import Policy


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

    For each frame, using the env's true state: keep the local answer when it is right; otherwise send the
    smallest remote request that would be back in time with a right answer; if none would, stay local. Greedy
    per frame (it does not plan the uplink for later frames), so it bounds what confidence-and-network-aware
    decisions can reach, not the true optimum.
    """

    name = "oracle"

    def __init__(self) -> None:
        self._core = None

    def attach(self, env: Any) -> None:
        self._core = env.core

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.int64]:
        if self._core is None:
            raise RuntimeError("HindsightOracle needs attach(env) before act(): it reads the env's true state")
        p = self._core.preview()
        good = p["on_time"] & p["correct"] & p["can_send"][:, None]
        cost = np.where(good, p["bytes"], np.inf)
        best = cost.argmin(1)
        useful = ~p["student_correct"] & good.any(1)
        return np.where(useful, best + 1, 0).astype(np.int64)


def baseline_policies(action_names: list[str], seed: int = 0) -> dict[str, Policy]:
    """Every fixed baseline for an env with these action names (``local``, ``offload@r``..., ``teacher``)."""
    out: dict[str, Policy] = {"local": ConstantPolicy(0, "local")}
    for a, name in enumerate(action_names[1:-1], start=1):
        out[name] = ConstantPolicy(a, name)
    out["teacher"] = ConstantPolicy(len(action_names) - 1, "teacher")
    out["random"] = RandomPolicy(len(action_names), seed)
    out["oracle"] = HindsightOracle()
    return out

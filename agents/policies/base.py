"""``Policy``: the one interface every decision maker implements (baselines, CBO, SB3/RLlib agents, ONNX runtime)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
from numpy.typing import NDArray


class Policy(ABC):
    """Batched decisions: observations [B, D] in, actions [B] (int64) out.

    ``attach(env)`` is called by the evaluator with the vectorised env a policy will act in (most ignore it;
    the hindsight oracle reads the env's true state through it). ``reset()`` clears any per-episode state.
    ``describe()`` returns the parameters worth saving with a run (e.g. CBO's tuned thresholds).
    """

    name: str = "policy"

    @abstractmethod
    def act(self, obs: NDArray[np.float32]) -> NDArray[np.int64]:
        """One action per row of ``obs``."""

    def attach(self, env: Any) -> None:
        """Called once per evaluation with the env the policy acts in; observe its layout or state if needed."""

    def reset(self) -> None:
        """Start of a batch of episodes."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


class FieldIndex:
    """Column lookup of named observation fields (from ``env.observation_fields``), with a clear error."""

    def __init__(self, fields: list[str]):
        self.fields = list(fields)
        self._pos = {f: i for i, f in enumerate(self.fields)}

    def __getitem__(self, name: str) -> int:
        try:
            return self._pos[name]
        except KeyError:
            raise KeyError(f"observation has no field {name!r}; fields are {self.fields}") from None

    def many(self, names: list[str]) -> NDArray[np.intp]:
        return np.array([self[n] for n in names], dtype=np.intp)

"""``learned-greedy``: the one-step learned baseline. Is RL needed, or does supervised learning suffice?

A small multilayer perceptron (``GreedyModel``, NumPy inference: it deploys like the heuristics) reads the whole
observation and estimates, for every action, P(the answer this frame will use is right | this observation, this
action): for ``local`` the student's answer; for a remote action the remote answer if it is back before the
deadline, else the student's (the device falls back to it); for ``reuse`` the cached answer if one is held, else
the student's. The policy takes the action with the largest estimate plus ``send_bonus`` for the actions that
send the frame (a sent frame's answer also refreshes the answer cache for the frames after it, a value no
one-step estimate sees) and ``reuse_bonus`` for ``reuse``. The bonuses are tuned by grid search on training
traces x training scenes like every heuristic's knobs (``tune_learned_greedy``).

The model is fitted (``agents.evaluation.fit_learned_greedy``) on rollouts over training traces x training
scenes only, its labels read in hindsight from the env's ``preview()`` for every action at every visited state
(the label of one action does not depend on which action the rollout took). Like every learned estimate here it
sees nothing at decision time that a device does not have: the observation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .base import Policy
from .tuning import grid_search


@dataclass
class GreedyModel:
    """An MLP obs [B, D] -> per-action P(answer used is right) [B, A]: standardised inputs, ``tanh`` hidden layers,
    a sigmoid output per action. ``weights`` and ``biases`` per layer; ``fields`` and ``actions`` the layout it was
    fitted on (a policy bound to another layout is refused)."""

    mean: NDArray[np.float32]
    scale: NDArray[np.float32]
    weights: list[NDArray[np.float32]]
    biases: list[NDArray[np.float32]]
    fields: list[str]
    actions: list[str]
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        dims = [len(self.fields)] + [w.shape[1] for w in self.weights]
        if self.mean.shape != (len(self.fields),) or self.scale.shape != (len(self.fields),):
            raise ValueError(f"GreedyModel: mean/scale must have one value per field ({len(self.fields)}), got "
                             f"{self.mean.shape} and {self.scale.shape}")
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            if w.shape[0] != dims[k] or b.shape != (w.shape[1],):
                raise ValueError(f"GreedyModel: layer {k} has weights {w.shape} and biases {b.shape}; expected "
                                 f"({dims[k]}, n) and (n,)")
        if dims[-1] != len(self.actions):
            raise ValueError(f"GreedyModel: {dims[-1]} outputs for {len(self.actions)} actions {self.actions}")

    def logits(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        h = (np.asarray(obs, np.float32) - self.mean) / self.scale
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w + b
            if k < len(self.weights) - 1:
                h = np.tanh(h)
        return h

    def predict(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        """P(the answer used is right) [B, A] for every action."""
        return 1.0 / (1.0 + np.exp(-np.clip(self.logits(obs), -30.0, 30.0)))

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for a in (self.mean, self.scale, *self.weights, *self.biases):
            h.update(np.ascontiguousarray(a, np.float32).tobytes())
        return h.hexdigest()[:12]

    def arrays(self) -> dict[str, NDArray]:
        """Every array by name (``np.savez``-able; ``from_arrays`` reads it back)."""
        out = {"mean": self.mean, "scale": self.scale, "fields": np.array(self.fields),
               "actions": np.array(self.actions)}
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            out[f"w{k}"], out[f"b{k}"] = w, b
        return out

    @classmethod
    def from_arrays(cls, arrays: Any) -> GreedyModel:
        n = sum(1 for k in arrays if str(k).startswith("w"))
        return cls(np.asarray(arrays["mean"], np.float32), np.asarray(arrays["scale"], np.float32),
                   [np.asarray(arrays[f"w{k}"], np.float32) for k in range(n)],
                   [np.asarray(arrays[f"b{k}"], np.float32) for k in range(n)],
                   [str(x) for x in arrays["fields"]], [str(x) for x in arrays["actions"]])


@dataclass
class LearnedGreedyPolicy(Policy):
    """argmax over actions of the model's P(answer used is right) + ``send_bonus`` (remote actions) +
    ``reuse_bonus`` (reuse); see the module docstring."""

    model: GreedyModel
    send_bonus: float = 0.0
    reuse_bonus: float = 0.0
    name: str = "learned-greedy"

    def __post_init__(self) -> None:
        self._bonus: NDArray[np.float32] | None = None

    def attach(self, env: Any) -> None:
        self.bind_fields(env.observation_fields, env.action_names)

    def bind_fields(self, fields: list[str], action_names: list[str]) -> None:
        if list(fields) != self.model.fields or list(action_names) != self.model.actions:
            raise ValueError(f"{self.name}: fitted on observation fields {self.model.fields} and actions "
                             f"{self.model.actions}; this env has {list(fields)} and {list(action_names)}")
        self._bonus = np.array([self.send_bonus if a.startswith("offload@") or a == "teacher" else
                                self.reuse_bonus if a == "reuse" else 0.0 for a in action_names], np.float32)

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.int64]:
        if self._bonus is None:
            raise RuntimeError(f"{type(self).__name__} needs attach(env) or bind_fields(...) before act()")
        return (self.model.predict(obs) + self._bonus).argmax(1).astype(np.int64)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "send_bonus": self.send_bonus, "reuse_bonus": self.reuse_bonus,
                "hidden": [int(w.shape[1]) for w in self.model.weights[:-1]], "model": self.model.fingerprint(),
                **({"fit": self.model.info} if self.model.info else {})}


# One-step estimates rate a send at least as high as the local answer (a late answer falls back to it), so the
# tuned send bonus is usually negative, and accuracy changes fast around it (measured: 0.763 at -0.05, 0.706 at 0).
SEND_BONUS_GRID = [-0.1, -0.075, -0.05, -0.025, 0.0, 0.025, 0.05, 0.1]
REUSE_BONUS_GRID = [-0.05, 0.0, 0.05, 0.1]


def tune_learned_greedy(score: Callable[[Policy], float], model: GreedyModel
                        ) -> tuple[LearnedGreedyPolicy, list[dict[str, Any]]]:
    """Grid search of (send_bonus, reuse_bonus) for a fitted model; ``score`` evaluates on training traces and
    training scenes only. An optimum on an axis' edge extends it (``tuning.grid_search``)."""
    return grid_search(score, lambda **p: LearnedGreedyPolicy(model, **p),
                       {"send_bonus": SEND_BONUS_GRID, "reuse_bonus": REUSE_BONUS_GRID}, "learned-greedy")

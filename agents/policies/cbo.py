"""CBO, Confidence-Based Offloading, and its tuning: a reconstruction of the reference heuristic of Tan and Cao,
"Deep Learning on Mobile Devices Through Neural Processing Units and Edge Computing" (IEEE INFOCOM 2022,
arXiv 2112.02439), from the paper's abstract and problem statement (its method section was not readable here).

CBO's formulation: the expected accuracy of returning the NPU's answer is its *calibrated* confidence c (that is
why the student is temperature-scaled), and the expected accuracy of offloading at resolution r is the server's
accuracy a_r at r, profiled offline. Offloading pays off when a_r - c is large enough; which r is affordable is
decided by the network: the time to upload the frame at r at the estimated throughput, after the uplink's
current backlog, plus round trip and server time, must fit the time constraint. The adaptive rule implemented
here, per frame:

1. estimate throughput from the device's own recent uploads (harmonic mean; the observation's estimate);
2. r* = the largest resolution predicted to return within the deadline with a safety margin m (as a share of
   the deadline: ``slack_r >= m``), given backlog, RTT and server time (the observation's slack features);
3. offload at r* iff a_{r*} - c > tau, else return the local answer (also when no resolution is feasible).

The threshold adapts to the network through r*: on a slow link r* is small and a_{r*} low, so only very
unsure frames go; on a fast link more frames are worth sending. tau and m are tuned by grid search on
training traces and training scenes only.

Where our setting differs from the paper: the paper has no teacher; ``cbo+teacher`` adds a second threshold
(escalate to the teacher when it is predicted in time and a_teacher - c > tau_teacher, else apply CBO). The
paper decides over the frames of a time window; here decisions are per frame on a shared FIFO uplink, so
queueing is captured by the backlog term. We could not consult the paper's algorithm section text in this
environment (only its abstract and introduction were reachable); the rule follows the problem formulation above.
CBO observes only what the observation offers (confidence and slack fields); a_r come from the profile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:  # a type only: the policies load without the models (the device runtime imports them)
    from perception import FrameProfile

from .base import FieldIndex, Policy
from .tuning import grid_search


def profiled_accuracy(profile: FrameProfile) -> tuple[NDArray[np.float64], float]:
    """Server accuracy per resolution and teacher accuracy on the given (training) scenes."""
    return profile.server_correct.mean(0).astype(np.float64), float(profile.teacher_correct.mean())


@dataclass
class CBOPolicy(Policy):
    """Confidence-Based Offloading; see the module docstring for the rule and where it differs from the paper."""

    server_accuracy: NDArray[np.float64]  # a_r per resolution, ascending resolutions
    teacher_accuracy: float
    tau: float = 0.0  # offload iff a_{r*} - c > tau
    margin: float = 0.0  # feasible iff predicted slack (share of deadline) >= margin
    tau_teacher: float | None = None  # None: plain CBO; a number: the cbo+teacher variant
    name: str = "cbo"

    def __post_init__(self) -> None:
        self.server_accuracy = np.asarray(self.server_accuracy, np.float64)
        self._idx: dict[str, Any] | None = None

    def attach(self, env: Any) -> None:
        self.bind_fields(env.observation_fields, env.action_names)

    def bind_fields(self, fields: list[str], action_names: list[str]) -> None:
        """Read the observation layout: confidence and per-action slack columns."""
        ix = FieldIndex(fields)
        servers = [a for a in action_names if a.startswith("offload@")]
        if len(servers) != len(self.server_accuracy):
            raise ValueError(f"CBO has {len(self.server_accuracy)} server accuracies but the env offers {servers}")
        self._idx = {"conf": ix["top1_prob"], "slack": ix.many([f"slack_{a}" for a in servers]),
                     "slack_teacher": ix["slack_teacher"], "teacher_action": action_names.index("teacher"),
                     "server_actions": np.array([action_names.index(a) for a in servers], np.int64)}

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.int64]:
        if self._idx is None:
            raise RuntimeError("CBOPolicy needs attach(env) or bind_fields(...) before act()")
        ix = self._idx
        conf = obs[:, ix["conf"]].astype(np.float64)
        feasible = obs[:, ix["slack"]] >= self.margin  # [B, R]
        r = len(self.server_accuracy)
        # largest feasible resolution: index of the last True, -1 when none
        last = np.where(feasible.any(1), r - 1 - np.argmax(feasible[:, ::-1], axis=1), -1)
        gain = np.where(last >= 0, self.server_accuracy[np.maximum(last, 0)] - conf, -np.inf)
        action = np.where(gain > self.tau, ix["server_actions"][np.maximum(last, 0)], 0)
        if self.tau_teacher is not None:
            teacher_ok = obs[:, ix["slack_teacher"]] >= self.margin
            escalate = teacher_ok & (self.teacher_accuracy - conf > self.tau_teacher)
            action = np.where(escalate, ix["teacher_action"], action)
        return action.astype(np.int64)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "tau": self.tau, "margin": self.margin, "tau_teacher": self.tau_teacher,
                "server_accuracy": self.server_accuracy.round(4).tolist(),
                "teacher_accuracy": round(self.teacher_accuracy, 4)}


def tune_cbo(score: Callable[[Policy], float], server_accuracy: NDArray, teacher_accuracy: float,
             taus: NDArray | None = None, margins: NDArray | None = None,
             taus_teacher: NDArray | None = None) -> tuple[CBOPolicy, CBOPolicy, list[dict[str, float]]]:
    """Grid-search CBO's (tau, margin), then cbo+teacher's tau_teacher at that (tau, margin).

    ``score(policy)`` must evaluate on training traces and scenes only (higher is better). Returns the tuned
    ``cbo``, the tuned ``cbo+teacher`` and every grid point's score.
    """
    taus = np.round(np.arange(-0.30, 0.51, 0.05), 3) if taus is None else taus
    margins = np.array([0.0, 0.1, 0.2, 0.3]) if margins is None else margins
    taus_teacher = np.round(np.arange(-0.1, 0.71, 0.1), 3) if taus_teacher is None else taus_teacher
    cbo, grid = grid_search(score, lambda tau, margin: CBOPolicy(server_accuracy, teacher_accuracy, tau, margin),
                            {"tau": [float(t) for t in taus], "margin": [float(m) for m in margins]}, "cbo")
    cbot, more = grid_search(score, lambda tau_teacher: CBOPolicy(server_accuracy, teacher_accuracy, cbo.tau,
                                                                 cbo.margin, tau_teacher, name="cbo+teacher"),
                             {"tau_teacher": [float(t) for t in taus_teacher]}, "cbo+teacher",
                             fixed={"tau": cbo.tau, "margin": cbo.margin})
    return cbo, cbot, grid + more

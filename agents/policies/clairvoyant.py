"""``link-oracle``: an information-limited reference that knows the future bandwidth but not which answers are right.

The hindsight oracle (``agents.baselines.HindsightOracle``) knows two things no device knows: the true uplink
throughput ahead and which answers are right. The gap between the best heuristic and it therefore mixes two
causes. ``ClairvoyantLinkPolicy`` separates them: it is cachenet's decision rule (``agents.cachenet``) with the
*predicted* in-time test (slack at the device's throughput estimate >= margin) replaced by the *true* one, read
from ``env.preview()``'s link fields, and its late refresh limited by the true time the answer would come back;
the choice among actions still rests on the distilled estimates the device has. Its gap to cachenet is what
perfect bandwidth knowledge is worth to that rule; its gap to the hindsight oracle is what knowing correctness
is worth on top.

What it is, exactly: a greedy per-frame rule (it plans nothing across frames), with knobs tuned by grid search on
training traces x training scenes like every heuristic. So it is a REFERENCE, not a bound: a smarter use of the
same information (a per-episode plan of the uplink, or a better rule, as a learned policy may find) can do better.

Ordered by construction: with ``link_test="predicted"`` the policy is exactly cachenet (the device's predicted
in-time test with cachenet's margins), and the search starts from the tuned cachenet's every parameter with that
test, so cachenet's tuned point is a point of link-oracle's search and link-oracle scores at least as well as
cachenet on the tuning episodes (``tests/test_clairvoyant.py`` checks it). On held-out episodes it can still fall
below (tuning-to-test variance); the report says so when it does.

Decision rule with ``link_test="true"``, per frame, vectorised over the batch
(``gain_a = dist_a - P(student right)``, from the observation):

1. reuse (cachenet's rule): a cached answer is held, ``cos_cache >= min_cos``, its age <= ``max_age_s`` (and, with
   ``require_agree``, the student agrees with it) -> ``reuse``;
2. else in time: among the remote actions whose answer would TRULY be back before the deadline if sent now
   (``preview()["on_time"]``: the true trace, the queue ahead of it, a send buffer with room), the largest gain;
   taken if it exceeds ``tau``;
3. else late refresh (``late_refresh``): if the send buffer has room (and, with ``wait_pending``, no upload is in
   flight) and some remote gain exceeds ``tau``, send anyway -- its answer misses this frame but refreshes the
   cache for the frames after. Only requests whose answer would truly be back within ``max_late_s`` of capture
   count (``preview()["answer_delay_s"]``: a refresh that crawls through a slow link, blocking it, is not sent),
   and ``late_pick`` chooses among them: ``"gain"`` the largest gain, ``"soonest"`` the one back first;
4. else ``local``.

``wait_pending`` only gates late refreshes here: the true in-time test already accounts for the uploads ahead in
the queue. Preview fields read: ``on_time`` [B, R + 1], ``answer_delay_s`` [B, R + 1], ``can_send`` [B],
``pending`` [B].
Never ``correct``, ``student_correct`` or ``reuse_correct`` (``tests/test_clairvoyant.py`` checks it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .base import Policy
from .cachenet import CacheNetPolicy
from .tuning import MAX_AGE_GRID, MIN_COS_GRID, TAU_GRID, coordinate_search

LINK_PREVIEW_FIELDS = ("on_time", "answer_delay_s", "can_send", "pending")  # the only preview() fields it may read


@dataclass
class ClairvoyantLinkPolicy(CacheNetPolicy):
    """REFERENCE, not deployable: cachenet's rule with the true in-time test (see the module docstring)."""

    link_test: str = "true"  # "true": the true in-time test; "predicted": cachenet's own test (cachenet exactly)
    late_refresh: bool = False
    late_pick: str = "gain"  # "gain": the largest expected gain; "soonest": the answer back first
    max_late_s: float = 1e9  # a late refresh must truly be back within this many seconds of capture
    name: str = "link-oracle"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.late_pick not in ("gain", "soonest"):
            raise ValueError(f"late_pick must be 'gain' or 'soonest', got {self.late_pick!r}")
        if self.link_test not in ("true", "predicted"):
            raise ValueError(f"link_test must be 'true' or 'predicted', got {self.link_test!r}")
        self._env: Any = None
        self._cols: NDArray[np.intp] | None = None

    def attach(self, env: Any) -> None:
        """Bind the observation layout and keep the env, whose ``preview()`` gives the true link state."""
        self.bind_fields(env.observation_fields, env.action_names)
        remote = env.observation_spec.remote_names  # the column order of preview()'s [B, R + 1] fields
        names = env.action_names
        self._cols = np.array([remote.index(names[a]) for a in self._idx["actions"]], np.intp)
        self._env = env

    def link(self) -> dict[str, NDArray]:
        """The true-link part of ``env.preview()`` (only ``LINK_PREVIEW_FIELDS``), remote columns in this
        policy's action order."""
        if self._env is None:
            raise RuntimeError("ClairvoyantLinkPolicy needs attach(env) before act(): it reads the true link "
                               "through env.preview()")
        p = self._env.preview()
        return {"on_time": p["on_time"][:, self._cols], "answer_delay_s": p["answer_delay_s"][:, self._cols],
                "can_send": p["can_send"], "pending": p["pending"]}

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.int64]:
        if self.link_test == "predicted":
            if self._env is None:
                raise RuntimeError("ClairvoyantLinkPolicy needs attach(env) before act()")
            return CacheNetPolicy.act(self, obs)  # the device's own in-time test: cachenet with these parameters
        link = self.link()
        ix = self._idx
        gain = self.gain(obs)
        rows = np.arange(len(obs))
        in_time = np.where(link["on_time"], gain, -np.inf)
        best = in_time.argmax(1)
        go = in_time[rows, best] > self.tau
        action = np.where(go, ix["actions"][best], ix["local_action"])
        if self.late_refresh:
            worth = (gain > self.tau) & (link["answer_delay_s"] <= self.max_late_s)
            late = ~go & link["can_send"] & worth.any(1)
            if self.wait_pending:
                late &= link["pending"] == 0
            score = np.where(worth, gain if self.late_pick == "gain" else -link["answer_delay_s"], -np.inf)
            action = np.where(late, ix["actions"][score.argmax(1)], action)
        return np.where(self.reusable(obs), ix["reuse_action"], action).astype(np.int64)  # cachenet's rule 1

    def describe(self) -> dict[str, Any]:
        d = {**super().describe(), "link_test": self.link_test}
        if self.link_test == "predicted":  # cachenet exactly: the late-refresh knobs do not apply
            return {**d, "reads_preview": [], "kind": "reference (here cachenet's own rule: the predicted link)"}
        d.update({"late_refresh": self.late_refresh, "late_pick": self.late_pick, "max_late_s": self.max_late_s,
                  "reads_preview": list(LINK_PREVIEW_FIELDS),
                  "kind": "reference (true future link, not deployable)"})
        for unused in ("margin", "refresh_margin"):  # the true in-time test replaces the slack margins
            d.pop(unused)
        return d


def tune_clairvoyant(score: Callable[[Policy], float], base: CacheNetPolicy
                     ) -> tuple[ClairvoyantLinkPolicy, list[dict[str, Any]]]:
    """Coordinate-wise grid search starting from the tuned cachenet's every parameter with cachenet's own
    (predicted) in-time test, so its first point IS the tuned cachenet: the in-time test with the late-refresh
    knobs (whether, which request, how late at most, wait for pending), then (tau, use_teacher), then the reuse
    rule. Every stage contains the point it starts from (``coordinate_search``), so the result scores at least
    as well as ``base`` under ``score``, which evaluates on training traces and training scenes only."""
    start = {k: getattr(base, k) for k in ("tau", "margin", "use_teacher", "local_field", "min_cos", "max_age_s",
                                            "require_agree", "refresh_margin", "wait_pending")}
    start["link_test"] = "predicted"
    stages = [{"link_test": ["predicted", "true"], "late_refresh": [False, True], "late_pick": ["gain", "soonest"],
               "wait_pending": [False, True], "max_late_s": [0.5, 1.0, 2.0, 1e9]},
              {"tau": TAU_GRID, "use_teacher": [False, True]},
              {"min_cos": MIN_COS_GRID, "max_age_s": MAX_AGE_GRID, "require_agree": [False, True]}]
    return coordinate_search(score, ClairvoyantLinkPolicy, start, stages, "link-oracle")

"""What every experiment reads: the frame profile and the traces (``Inputs``), loaded into a ``Setup`` with its
splits, and the names of the policies an experiment can ask for."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.evaluation import Setup
from agents.policies import HEURISTICS, TUNED_REFERENCES


def _default_profile() -> Path:
    from perception import DEFAULT_PROFILE

    return Path(DEFAULT_PROFILE)


@dataclass(frozen=True)
class Inputs:
    """Where an experiment's data comes from: the frame profile, the traces (a file, a folder, ``"embedded"`` for
    the fitted generator, or None: ../shared/traces when present, else the generator), and the seed that fixes
    the generator's traces, the tuning episodes and the evaluation episodes."""

    profile: Path = field(default_factory=_default_profile)
    traces: str | None = None
    seed: int = 0


@dataclass(frozen=True)
class Loaded:
    """An experiment's loaded inputs: the ``Setup`` (profile, env config, trace splits), where the traces came from
    (printed and recorded), and a source that reloads them (a path, or ``"embedded"``) for processes that rebuild the
    env themselves (RLlib EnvRunners)."""

    inputs: Inputs
    setup: Setup
    origin: str
    source: str

    def describe(self, more: str = "") -> str:
        """The two lines a job prints about its inputs and splits."""
        s = self.setup
        return (f"profile {self.inputs.profile}: {s.profile.n_frames} frames; traces: {self.origin}\n"
                f"split: {len(s.train_traces)} train / {len(s.test_traces)} test traces (uplink only), "
                f"scenes split {1 - s.config.test_fraction:.0%} / {s.config.test_fraction:.0%}{more}")


def load_inputs(inputs: Inputs) -> Loaded:
    """Load the profile and the traces and split both (traces by file, scenes by photo)."""
    from bandwidth_traces import EMBEDDED_ORIGIN, default_traces
    from perception import FrameProfile

    profile = FrameProfile.load(inputs.profile)
    traces, origin = default_traces(inputs.traces, seed=inputs.seed)
    source = "embedded" if origin == EMBEDDED_ORIGIN else origin
    return Loaded(inputs, Setup.create(profile, traces), origin, source)


def all_policy_names(setup: Setup) -> list[str]:
    """Every baseline for the profile's actions (reuse included), random, the tuned heuristics (cbo, cbo+teacher,
    cbo-cond, cachenet), the hindsight oracle and the tuned references (link-oracle)."""
    return [*setup.action_names(), "random", *HEURISTICS, "oracle", *TUNED_REFERENCES]


def resolve_policies(names: Sequence[str], setup: Setup, flag: str = "--policies") -> list[str]:
    """Policy names as asked: ``["all"]`` means every name; an unknown name is an error listing the known ones."""
    known = all_policy_names(setup)
    names = known if list(names) == ["all"] else list(names)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"{flag}: unknown {', '.join(unknown)}; expected 'all' or names from {', '.join(known)}")
    return names


def print_tuning(tuning: dict[str, Any], log: Callable[[str], None] = print) -> None:
    """One line per tuned policy: its parameters, what it was tuned on and how long it took."""
    for name in (*HEURISTICS, *TUNED_REFERENCES):
        if name in tuning:
            params = {k: v for k, v in tuning[name]["params"].items()
                      if k not in ("name", "server_accuracy", "teacher_accuracy")}
            took = f" in {tuning[name]['seconds']} s" if "seconds" in tuning[name] else ""
            log(f"  {name} tuned on {tuning['tuned_on']}{took}: {params}")

"""``JobRecord``: what a report or sweep records about the job that wrote it (report_meta.json's and sweep.json's
``run``), with the same keys for every command."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .experiment import TrainedRun
    from .inputs import Loaded


def code_version(root: Path | None = None) -> dict[str, Any]:
    """The git commit of the code that runs (and whether its tracked files had uncommitted changes), or
    ``{"commit": None}`` outside a git checkout."""
    root = Path(__file__).resolve().parents[2] if root is None else root
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None}
    if commit.returncode != 0:
        return {"commit": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


@dataclass(frozen=True)
class JobRecord:
    """The job behind a report: command line, inputs, splits, evaluation episodes, tuned heuristics, trained runs
    (name -> seed, folder, time, steps, best validation accuracy, ONNX file), learned runs compared, timing and the
    code version that ran (``code_version``: commit, uncommitted changes)."""

    command: list[str]
    profile: str
    traces: str
    seed: int
    train_traces: int
    test_traces: int
    episodes_per_trace: int
    env_config: dict[str, Any]
    heuristic_tuning: dict[str, Any]
    total_seconds: float
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    compared_runs: list[str] = field(default_factory=list)
    test_traces_path: str | None = None
    code: dict[str, Any] = field(default_factory=code_version)

    @classmethod
    def of(cls, loaded: Loaded, episodes: int, tuning: dict[str, Any], *, command: Sequence[str] = (),
           runs: Sequence[TrainedRun] = (), compared_runs: Sequence[str] = (), test_traces_path: str | None = None,
           total_seconds: float = 0.0, setup: Any = None) -> JobRecord:
        """The record of a job on ``loaded`` (``setup``, when given, is the one evaluated: e.g. with test traces
        from another data set)."""
        setup = loaded.setup if setup is None else setup
        return cls(list(command), str(loaded.inputs.profile), loaded.origin, loaded.inputs.seed,
                   len(setup.train_traces), len(setup.test_traces), episodes, setup.config.to_dict(), tuning,
                   round(total_seconds, 1), {r.name: r.to_dict() for r in runs}, [str(r) for r in compared_runs],
                   test_traces_path)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

"""Shared helpers for benchmark scripts: timing loops and writing the JSON result atomically."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from offload_common.files import atomic_write_text


def rate(fn: Callable[[], int], min_seconds: float = 2.0) -> float:
    """Units per second of ``fn`` (which returns how many units it did), run repeatedly for ``min_seconds``."""
    fn()  # warm-up
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < min_seconds:
        done += fn()
    return done / elapsed


def write_json(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write ``payload`` plus machine details to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                           "python": platform.python_version()}, **payload}
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")


def git_commit() -> str:
    """The project's HEAD commit, with ``-dirty`` appended when tracked files have uncommitted changes (what
    ``train_agent.py results --record`` reads from a benchmark's ``git_commit``)."""
    root = Path(__file__).resolve().parents[1]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True,
                           text=True).stdout.strip()
    return head + ("-dirty" if dirty else "")

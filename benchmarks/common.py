"""Shared helpers for benchmark scripts: timing loops and writing the JSON result atomically."""

from __future__ import annotations

import json
import os
import platform
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

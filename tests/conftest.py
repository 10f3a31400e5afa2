"""Shared fixtures: where the real data in ../shared lives (tests that need it skip when it is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bandwidth_traces import shared_traces_dir


@pytest.fixture(scope="session")
def shared_traces() -> Path:
    path = shared_traces_dir()
    if path is None:
        pytest.skip("../shared/traces not present")
    return path

"""The kernel's per-frame table (``Tables.frames``): one row per profile frame, one column group per quantity.

``FRAME_COLUMNS`` is the one list of column groups, in column order: each names the group, says how many columns
it takes for top-k ``k`` and ``r`` remote actions (R resolutions + the teacher), and how to read it from a
``perception.FrameProfile``. ``envs.kernel.PARAMS`` gets a ``col_<name>`` field per group (the group's first
column) and ``envs.core`` fills ``frames`` from it, so a new per-frame quantity is one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from offload_common.observation import confidence_features


class FrameColumns(NamedTuple):
    """One column group of the per-frame table."""

    name: str
    width: Callable[[int, int], int]  # (top_k k, remote actions r) -> columns
    values: Callable[[Any], NDArray]  # FrameProfile -> [N, width] (or [N])


def _remote_bytes(p: Any) -> NDArray[np.float64]:
    return np.concatenate([p.server_bytes, p.teacher_bytes[:, None]], 1).astype(np.float64)


FRAME_COLUMNS = (
    # the student's confidence features: top-k probabilities, margin, entropy
    FrameColumns("conf", lambda k, r: k + 2, lambda p: confidence_features(p.student_topk_prob)),
    FrameColumns("remote_kb", lambda k, r: r, lambda p: _remote_bytes(p) / 1000.0),  # JPEG kB per remote action
    FrameColumns("bytes", lambda k, r: r, _remote_bytes),  # bytes sent per remote action
    # answer right: the student, then each remote action
    FrameColumns("correct", lambda k, r: r + 1,
                 lambda p: np.c_[p.student_correct, p.server_correct, p.teacher_correct]),
    FrameColumns("label", lambda k, r: 1, lambda p: p.label[:, None]),
    FrameColumns("remote_pred", lambda k, r: r, lambda p: np.c_[p.server_pred, p.teacher_pred]),  # answer class
    FrameColumns("remote_conf", lambda k, r: r, lambda p: np.c_[p.server_conf, p.teacher_conf]),  # its confidence
    FrameColumns("topk_class", lambda k, r: k, lambda p: p.student_topk_class),  # the student's top-k classes
    # distilled P(right): the student, then each remote action
    FrameColumns("dist", lambda k, r: r + 1, lambda p: p.distilled),
)


def frame_columns(top_k: int, n_remote: int) -> dict[str, slice]:
    """The columns of each group of ``Tables.frames`` for top-k ``top_k`` and ``n_remote`` remote actions."""
    edges = np.cumsum([0] + [c.width(top_k, n_remote) for c in FRAME_COLUMNS])
    return {c.name: slice(int(a), int(b)) for c, a, b in zip(FRAME_COLUMNS, edges[:-1], edges[1:])}


def frame_table(profile: Any) -> tuple[NDArray[np.float64], dict[str, slice]]:
    """``Tables.frames`` [N, C] (float64) of a ``perception.FrameProfile``, and its column groups."""
    columns = frame_columns(profile.top_k, len(profile.resolutions) + 1)
    frames = np.zeros((profile.n_frames, max(s.stop for s in columns.values())))
    for c in FRAME_COLUMNS:
        frames[:, columns[c.name]] = c.values(profile)
    return frames, columns

"""cbo-cond and cachenet decisions on hand-built observations (named fields, as the env lays them out)."""

from __future__ import annotations

import numpy as np
import pytest

from agents.policies import CacheNetPolicy, CBOCondPolicy, tune_cbo_cond
from offload_common.observation import CACHE_AGE_SCALE_S

ACTIONS = ["local", "reuse", "offload@160", "offload@256", "teacher"]
FIELDS = ["dist_local", "dist_offload@160", "dist_offload@256", "dist_teacher",
          "slack_offload@160", "slack_offload@256", "slack_teacher",
          "cache_held", "cache_age", "cos_cache", "cache_agrees"]


def obs(**values: float) -> np.ndarray:
    row = np.zeros(len(FIELDS), np.float32)
    for k, v in values.items():
        row[FIELDS.index(k)] = v
    return row


def bound(policy):
    policy.bind_fields(FIELDS, ACTIONS)
    return policy


def test_cbo_cond_takes_the_largest_expected_gain_in_time() -> None:
    pol = bound(CBOCondPolicy(tau=0.05, margin=0.1))
    rows = np.stack([
        # 256 gains most (0.85 - 0.5) and is in time
        obs(dist_local=0.5, **{"dist_offload@160": 0.7, "dist_offload@256": 0.85, "dist_teacher": 0.9,
                                "slack_offload@160": 0.5, "slack_offload@256": 0.3, "slack_teacher": -1.0}),
        # 256 predicted late (slack below the margin): 160 is the best in time
        obs(dist_local=0.5, **{"dist_offload@160": 0.7, "dist_offload@256": 0.85,
                                "slack_offload@160": 0.5, "slack_offload@256": 0.05, "slack_teacher": -1.0}),
        # nothing gains more than tau: local
        obs(dist_local=0.8, **{"dist_offload@160": 0.82, "dist_offload@256": 0.84,
                                "slack_offload@160": 0.5, "slack_offload@256": 0.5, "slack_teacher": -1.0}),
        # teacher in time and the largest gain
        obs(dist_local=0.3, **{"dist_offload@160": 0.6, "dist_offload@256": 0.7, "dist_teacher": 0.95,
                                "slack_offload@160": 0.5, "slack_offload@256": 0.5, "slack_teacher": 0.2}),
    ])
    assert pol.act(rows).tolist() == [3, 2, 0, 4]
    no_teacher = bound(CBOCondPolicy(tau=0.05, margin=0.1, use_teacher=False))
    assert no_teacher.act(rows[3:]).tolist() == [3]


def test_cachenet_reuses_while_similar_young_and_held() -> None:
    pol = bound(CacheNetPolicy(tau=0.05, margin=0.1, min_cos=0.8, max_age_s=2.0))
    refresh = {"dist_local": 0.5, "dist_offload@256": 0.9, "slack_offload@256": 0.5, "slack_offload@160": -1,
               "slack_teacher": -1}
    age = lambda s: s / CACHE_AGE_SCALE_S  # noqa: E731
    rows = np.stack([
        obs(cache_held=1, cache_age=age(1.0), cos_cache=0.9, **refresh),  # reuse
        obs(cache_held=1, cache_age=age(3.0), cos_cache=0.9, **refresh),  # too old: refresh at 256
        obs(cache_held=1, cache_age=age(1.0), cos_cache=0.7, **refresh),  # new scene: refresh
        obs(cache_held=0, cache_age=0.0, cos_cache=0.99, **refresh),  # nothing held: refresh
    ])
    assert pol.act(rows).tolist() == [1, 3, 3, 3]
    strict = bound(CacheNetPolicy(tau=0.05, margin=0.1, min_cos=0.8, max_age_s=2.0, require_agree=True))
    assert strict.act(rows[:1]).tolist() == [3]  # the student disagrees with the cached answer
    agree = rows[:1].copy()
    agree[0, FIELDS.index("cache_agrees")] = 1
    assert strict.act(agree).tolist() == [1]


def test_unbound_policy_and_missing_field_errors() -> None:
    with pytest.raises(RuntimeError, match="attach"):
        CBOCondPolicy().act(np.zeros((1, len(FIELDS)), np.float32))
    with pytest.raises(KeyError, match="cache_held"):
        CacheNetPolicy().bind_fields(FIELDS[:7], ACTIONS)


def test_tuning_picks_the_best_scored_point() -> None:
    # a score with a known optimum: the tuner must find it on its grid
    best, rows = tune_cbo_cond(lambda p: -abs(p.tau - 0.15) - abs(p.margin - 0.2) + 0.01 * p.use_teacher
                               + 0.01 * (p.local_field == "top1_prob"))
    assert (best.tau, best.margin, best.use_teacher, best.local_field) == (0.15, 0.2, True, "top1_prob")
    assert len(rows) == 11 * 4 * 2 * 2 and max(r["score"] for r in rows) == pytest.approx(0.02)


def test_cachenet_refreshes_late_and_waits_for_pending_answers() -> None:
    fields = FIELDS + ["pending"]
    stale = np.zeros((2, len(fields)), np.float32)
    for row in stale:
        row[fields.index("dist_local")] = 0.4
        row[fields.index("dist_offload@256")] = 0.9
        row[fields.index("slack_offload@256")] = -0.5  # this frame's answer would be late
        row[fields.index("slack_offload@160")] = row[fields.index("slack_teacher")] = -5
    stale[1, fields.index("pending")] = 0.1
    in_time = CacheNetPolicy(tau=0.05, margin=0.1)
    in_time.bind_fields(fields, ACTIONS)
    assert in_time.act(stale).tolist() == [0, 0]  # nothing in time: local
    late = CacheNetPolicy(tau=0.05, margin=0.1, refresh_margin=-1.0, wait_pending=True)
    late.bind_fields(fields, ACTIONS)
    assert late.act(stale).tolist() == [3, 0]  # refresh although late; but not while an answer is coming

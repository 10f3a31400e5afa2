"""link-oracle (agents.clairvoyant): knows the true link through preview(), never which answers are right."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from helpers import constant_trace, hand_profile, outage_trace

from agents.evaluation import Setup, best_heuristic, evaluate_many, named_policies, write_report
from agents.evaluation.report import LINK_ORACLE_NOTE
from agents.policies import (
    LINK_PREVIEW_FIELDS,
    CacheNetPolicy,
    ClairvoyantLinkPolicy,
    HindsightOracle,
    tune_clairvoyant,
)
from envs import EnvConfig, OffloadVectorEnv
from offload_common.observation import CACHE_AGE_SCALE_S

ACTIONS = ["local", "offload@160", "offload@256", "teacher", "reuse"]
REMOTE = ["offload@160", "offload@256", "teacher"]
FIELDS = ["dist_local", "top1_prob", *[f"dist_{a}" for a in REMOTE], *[f"slack_{a}" for a in REMOTE],
          "cache_held", "cache_age", "cos_cache", "cache_agrees", "pending"]


class StubEnv:
    """Just what the policy reads: the layout, and a preview() with fixed true-link fields."""

    def __init__(self, **link: Any):
        self.observation_fields, self.action_names = FIELDS, ACTIONS
        self.observation_spec = SimpleNamespace(remote_names=REMOTE)
        self.link = link

    def preview(self) -> dict[str, np.ndarray]:
        return dict(self.link)


def obs(**values: float) -> np.ndarray:
    row = np.zeros(len(FIELDS), np.float32)
    for k, v in values.items():
        row[FIELDS.index(k)] = v
    return row


def test_decision_rule_on_a_fixed_true_link() -> None:
    gains = {"dist_local": 0.4, "dist_offload@160": 0.6, "dist_offload@256": 0.8, "dist_teacher": 0.9,
             # the device's own prediction says everything is in time: the policy must not look at it
             "slack_offload@160": 1.0, "slack_offload@256": 1.0, "slack_teacher": 1.0}
    rows = np.stack([obs(**gains)] * 5 + [obs(cache_held=1, cache_age=1.0 / CACHE_AGE_SCALE_S, cos_cache=0.99,
                                              **gains)])
    link = {"on_time": np.array([[True, True, False], [True, False, False], [False, False, False],
                                 [False, False, False], [False, False, False], [True, True, True]]),
            "answer_delay_s": np.array([[0.1, 0.2, 0.5], [0.1, 0.4, 0.9], [0.5, 0.8, 3.0], [0.5, 0.8, 3.0],
                                        [0.5, 0.8, 3.0], [0.1, 0.1, 0.1]]),
            "can_send": np.array([True, True, True, False, True, True]), "pending": np.array([0, 0, 0, 0, 1, 0])}
    in_time_only = ClairvoyantLinkPolicy(tau=0.1, min_cos=0.9, max_age_s=2.0)
    in_time_only.attach(StubEnv(**link))
    # 256 is the largest gain truly in time; then 160; nothing in time -> local; cached answer reusable -> reuse
    assert in_time_only.act(rows).tolist() == [2, 1, 0, 0, 0, 4]
    late = ClairvoyantLinkPolicy(tau=0.1, min_cos=0.9, max_age_s=2.0, late_refresh=True, wait_pending=True,
                                 max_late_s=1.0)
    late.attach(StubEnv(**link))
    # late refresh: the largest gain back within 1 s (256, not the teacher at 3 s); not when the buffer is
    # full; not while an upload is in flight (wait_pending)
    assert late.act(rows).tolist() == [2, 1, 2, 0, 0, 4]
    soonest = ClairvoyantLinkPolicy(tau=0.1, min_cos=0.9, max_age_s=2.0, late_refresh=True, late_pick="soonest")
    soonest.attach(StubEnv(**link))
    assert soonest.act(rows).tolist() == [2, 1, 1, 0, 1, 4]  # 160 is back first; pending does not stop it
    no_teacher = ClairvoyantLinkPolicy(tau=0.1, use_teacher=False, late_refresh=True)
    no_teacher.attach(StubEnv(**{k: v[2:3] for k, v in link.items()}))
    assert no_teacher.act(rows[2:3]).tolist() == [2]  # the teacher is not a candidate, even late


def test_refuses_to_act_before_attach_and_rejects_unknown_pick() -> None:
    with pytest.raises(RuntimeError, match="attach"):
        ClairvoyantLinkPolicy().act(np.zeros((1, len(FIELDS)), np.float32))
    pol = ClairvoyantLinkPolicy()
    pol.bind_fields(FIELDS, ACTIONS)  # the layout alone is not enough: it needs the env's true link
    with pytest.raises(RuntimeError, match="attach"):
        pol.act(np.zeros((1, len(FIELDS)), np.float32))
    with pytest.raises(ValueError, match="late_pick"):
        ClairvoyantLinkPolicy(late_pick="bytes")


class LinkOnlyEnv:
    """An env whose preview() refuses every field but the true link, and whose correctness fields, were they
    readable, would be inverted (so a policy that used them would act differently)."""

    def __init__(self, env: OffloadVectorEnv):
        self._env = env
        self.reads: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)

    def preview(self) -> dict[str, np.ndarray]:
        env = self

        class Guarded(dict):
            def __getitem__(self, key: str) -> np.ndarray:
                env.reads.add(key)
                if key not in LINK_PREVIEW_FIELDS:
                    raise AssertionError(f"link-oracle read preview()[{key!r}]")
                return super().__getitem__(key)

        p = self._env.preview()
        return Guarded({k: (~v if k in ("correct", "student_correct", "reuse_correct") else v) for k, v in p.items()})


CFG = EnvConfig(fps=10, deadline_ms=200, student_ms=0.0,
                device_ms=0.0, request_ms=0.0, episode_frames=30, profile_split="all", trace_split="all")
TRACES = [constant_trace(8.0), outage_trace(), constant_trace(0.5, 50.0, "slow")]


def _factory(profile, cfg=CFG):
    return lambda n, traces: OffloadVectorEnv(n, profile, traces, cfg)


def test_never_reads_which_answers_are_right() -> None:
    prof = hand_profile(n_clips=6, frames=8)
    pol = ClairvoyantLinkPolicy(tau=0.0, min_cos=0.9, max_age_s=0.3, late_refresh=True)
    plain = evaluate_many({"link-oracle": pol}, _factory(prof), TRACES, episodes=2, seed=1)["link-oracle"]
    guard: list[LinkOnlyEnv] = []

    def guarded(n, traces):
        guard.append(LinkOnlyEnv(OffloadVectorEnv(n, prof, traces, CFG)))
        return guard[-1]

    res = evaluate_many({"link-oracle": pol}, guarded, TRACES, episodes=2, seed=1)["link-oracle"]
    assert np.array_equal(res.rollout.action, plain.rollout.action)
    assert guard[0].reads == {"on_time", "answer_delay_s", "can_send", "pending"}
    assert len(np.unique(plain.rollout.action)) >= 3  # it did choose: local, offloads and reuse all occur


def test_true_in_time_test_beats_cachenet_with_the_same_parameters() -> None:
    # the device starts from its prior throughput estimate, at which no answer is predicted in time, so cachenet
    # stays local and never measures the link; the link-oracle sends what is truly back in time (the 8 Mbit/s
    # link, the outage trace outside its outage) and nothing that is not (the 0.5 Mbit/s link, the outage)
    prof = hand_profile(n_clips=6, frames=8)
    params = dict(tau=0.0, min_cos=2.0)  # no reuse: only the in-time test differs
    pols = {"cachenet": CacheNetPolicy(**params, margin=0.0), "link-oracle": ClairvoyantLinkPolicy(**params)}
    res = evaluate_many(pols, _factory(prof), TRACES, episodes=3, seed=2)
    acc = {n: np.array(r.metrics["all"]["episode_accuracy"]) for n, r in res.items()}
    assert (acc["link-oracle"] >= acc["cachenet"]).all()
    fast = res["cachenet"].rollout.trace != 2
    assert (acc["link-oracle"][fast] > acc["cachenet"][fast]).all()
    assert res["link-oracle"].metrics["all"]["deadline_miss_rate"] == 0.0  # a sent frame is always back in time
    link = res["link-oracle"].rollout
    assert (link.action[link.trace == 2] == 0).all()  # 0.5 Mbit/s: nothing is ever back within 200 ms


def test_tuning_starts_from_cachenet_and_finds_the_grid_optimum() -> None:
    base = CacheNetPolicy(tau=0.1, local_field="top1_prob", min_cos=0.85, max_age_s=2.0, require_agree=True)
    seen: list[ClairvoyantLinkPolicy] = []

    def score(p: ClairvoyantLinkPolicy) -> float:
        seen.append(p)
        return (-abs(p.tau - 0.2) - abs(p.min_cos - 0.7) - abs(p.max_age_s - 4.0) + 0.01 * p.late_refresh
                - 0.001 * p.wait_pending + 0.01 * (p.max_late_s == 1.0))

    best, rows = tune_clairvoyant(score, base)
    assert (best.tau, best.min_cos, best.max_age_s, best.late_refresh, best.wait_pending, best.max_late_s) == (
        0.2, 0.7, 4.0, True, False, 1.0)
    first = seen[0]  # the search starts from cachenet's tuned parameters
    assert (first.tau, first.min_cos, first.max_age_s, first.require_agree) == (0.1, 0.85, 2.0, True)
    assert best.local_field == "top1_prob"  # carried over, not searched
    assert best.link_test == "true"  # the late-refresh bonus exists only with the true link test
    # the first stage also holds cachenet's own (predicted) in-time test: a point per distinct policy is scored
    # once (in predicted mode the late-refresh knobs do not apply, so its 32 rows share 2 evaluations)
    assert len(rows) == 2 * 2 * 2 * 2 * 4 + 11 * 2 + 7 * 5 * 2 and all(r["variant"] == "link-oracle" for r in rows)
    assert len(seen) < len(rows) - 32 + 2 + 1


def test_named_and_reported_as_a_reference_never_the_best_heuristic(tmp_path: Path) -> None:
    prof = hand_profile(n_clips=6, frames=8)
    setup = Setup(prof, CFG.replace(profile_split="train"), TRACES, TRACES)
    pols, tuning = named_policies(setup, ["local", "cachenet", "link-oracle"], 0)
    assert isinstance(pols["link-oracle"], ClairvoyantLinkPolicy) and "link-oracle" in tuning
    assert "cachenet" in tuning and tuning["link-oracle"]["params"]["reads_preview"] == list(LINK_PREVIEW_FIELDS)
    pols["oracle"] = HindsightOracle()
    pols["cachenet"] = CacheNetPolicy(tau=0.0, min_cos=2.0, margin=0.0)  # the weaker rule of the test above
    res = evaluate_many(pols, _factory(prof), TRACES, episodes=2, seed=0)
    acc = {n: r.metrics["all"]["accuracy"] for n, r in res.items()}
    assert acc["link-oracle"] > acc["cachenet"]
    assert best_heuristic(res) == "cachenet"
    write_report(res, tmp_path, np.array([t.mean_mbps for t in TRACES]), setup.action_names(),
                 plots=False)
    meta = json.loads((tmp_path / "report_meta.json").read_text())
    assert meta["best_heuristic"] == "cachenet" and LINK_ORACLE_NOTE in meta["notes"]
    md = (tmp_path / "report.md").read_text()
    assert LINK_ORACLE_NOTE in md and "| link-oracle | 0." in md and "| link-oracle | **" not in md

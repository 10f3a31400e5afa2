"""agents: CBO's decisions on hand-built observations, baselines, paired evaluation, the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import constant_trace, hand_profile, outage_trace

from agents.evaluation import bootstrap_ci, evaluate, evaluate_many, write_report
from agents.policies import CBOPolicy, ConstantPolicy, HindsightOracle, RandomPolicy
from envs import EnvConfig, OffloadVectorEnv
from offload_common.observation import ObservationSpec

SPEC = ObservationSpec(top_k=5, history=4, resolutions=(112, 160, 208, 256), deadline_s=0.2,
                       remote_rtt_s=(0.03,) * 4 + (0.08,), remote_compute_s=(0.002,) * 4 + (0.02,),
                       max_queue=16, prior_mbps=1.0)
FIELDS, ACTIONS = SPEC.field_names, SPEC.action_names


def obs_with(conf: float, slack: list[float], slack_teacher: float = -1.0) -> np.ndarray:
    o = np.zeros(SPEC.dim, np.float32)
    o[FIELDS.index("top1_prob")] = conf
    for name, v in zip(ACTIONS[1:-1], slack):
        o[FIELDS.index(f"slack_{name}")] = v
    o[FIELDS.index("slack_teacher")] = slack_teacher
    return o


@pytest.fixture
def cbo() -> CBOPolicy:
    pol = CBOPolicy(np.array([0.60, 0.74, 0.79, 0.80]), 0.82, tau=0.1, margin=0.05)
    pol.bind_fields(FIELDS, ACTIONS)
    return pol


def test_cbo_decisions_by_hand(cbo: CBOPolicy) -> None:
    obs = np.stack([
        obs_with(0.95, [0.9, 0.8, 0.7, 0.6]),   # sure of itself: 0.80 - 0.95 < 0.1 -> local
        obs_with(0.50, [0.9, 0.8, 0.7, 0.6]),   # unsure, fast link: largest feasible r = 256 (0.80 - 0.5 > 0.1)
        obs_with(0.50, [0.9, 0.3, 0.01, -1]),   # slower: 208 predicted late with the 0.05 margin -> 160
        obs_with(0.55, [0.9, -0.2, -1, -1]),    # only 112 feasible: 0.60 - 0.55 = 0.05 <= 0.1 -> local
        obs_with(0.40, [-1, -1, -1, -1]),       # nothing feasible -> local
        obs_with(0.45, [0.9, 0.8, 0.7, 0.6], slack_teacher=0.5),  # teacher feasible but plain CBO ignores it
    ])
    assert cbo.act(obs).tolist() == [0, 4, 2, 0, 0, 4]
    teacher = CBOPolicy(cbo.server_accuracy, 0.82, tau=0.1, margin=0.05, tau_teacher=0.3, name="cbo+teacher")
    teacher.bind_fields(FIELDS, ACTIONS)
    # 0.82 - 0.45 = 0.37 > 0.3 and predicted in time -> teacher; 0.82 - 0.5 = 0.32 but teacher late -> CBO's 256
    assert teacher.act(obs).tolist() == [0, 4, 2, 0, 0, 5]


def test_cbo_needs_the_observation_layout(cbo: CBOPolicy) -> None:
    fresh = CBOPolicy(cbo.server_accuracy, 0.82)
    with pytest.raises(RuntimeError, match="attach"):
        fresh.act(np.zeros((1, SPEC.dim), np.float32))
    with pytest.raises(KeyError, match="no field 'top1_prob'"):
        fresh.bind_fields(["a", "b"], ACTIONS)


def test_bootstrap_interval_brackets_the_mean() -> None:
    vals = np.random.default_rng(0).normal(0.7, 0.05, 200)
    lo, hi = bootstrap_ci(vals, seed=1)
    assert lo < vals.mean() < hi and hi - lo == pytest.approx(2 * 1.96 * vals.std() / np.sqrt(200), rel=0.2)
    assert bootstrap_ci(vals, seed=1) == (lo, hi)


def _factory(profile, cfg):
    return lambda n, traces: OffloadVectorEnv(n, profile, traces, cfg)


def test_paired_episodes_and_baseline_ordering() -> None:
    prof = hand_profile(n_clips=4)
    traces = [constant_trace(8.0), outage_trace(), constant_trace(0.5, 50.0, "slow")]
    cfg = EnvConfig(fps=10, deadline_ms=200, student_ms=0.0,
                    device_ms=0.0, request_ms=0.0, episode_frames=12, profile_split="all",
                    trace_split="all")
    pols = {"local": ConstantPolicy(0, "local"), "offload@100": ConstantPolicy(1, "offload@100"),
            "random": RandomPolicy(4, seed=3), "oracle": HindsightOracle()}
    res = evaluate_many(pols, _factory(prof, cfg), traces, episodes=3, seed=5)
    frames = {n: r.rollout.frame for n, r in res.items()}
    trace_rows = {n: r.rollout.trace for n, r in res.items()}
    for n in pols:  # every policy saw exactly the same episodes, frame for frame
        assert np.array_equal(frames[n], frames["local"]) and np.array_equal(trace_rows[n], trace_rows["local"])
    # the same episodes come back when evaluated alone with the same seed
    alone = evaluate(ConstantPolicy(0, "local"), _factory(prof, cfg), traces, episodes=3, seed=5)
    assert np.array_equal(alone.rollout.frame, frames["local"])
    acc = {n: r.metrics["all"]["accuracy"] for n, r in res.items()}
    assert acc["local"] == 0.0  # the hand profile's student is always wrong
    assert acc["local"] <= acc["offload@100"] <= acc["oracle"]
    assert acc["oracle"] >= max(acc.values())  # late sends of the oracle are cache refreshes (see its docstring)
    assert set(res["local"].metrics) == {"hand", "all"}
    assert res["random"].metrics["all"]["action_mix"]["local"] == pytest.approx(0.25, abs=0.1)


def test_report_files(tmp_path: Path) -> None:
    prof = hand_profile(n_clips=4)
    traces = [constant_trace(8.0), constant_trace(0.5, 50.0, "slow")]
    cfg = EnvConfig(fps=10, deadline_ms=200, student_ms=0.0,
                    device_ms=0.0, request_ms=0.0, episode_frames=10, profile_split="all",
                    trace_split="all")
    pols = {"local": ConstantPolicy(0, "local"), "oracle": HindsightOracle(),
            "cbo": CBOPolicy(np.array([1.0, 1.0]), 1.0, tau=0.0)}
    res = evaluate_many(pols, _factory(prof, cfg), traces, episodes=2, seed=0)
    write_report(res, tmp_path, np.array([t.mean_mbps for t in traces]), ["local", "offload@100", "offload@200",
                                                                          "teacher", "reuse"], {"seed": 0})
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report) == {"local", "oracle", "cbo"}
    m = report["cbo"]["hand"]
    assert 0 <= m["accuracy_ci95"][0] <= m["accuracy"] <= m["accuracy_ci95"][1] <= 1
    assert "**" in (tmp_path / "report.md").read_text()
    for png in ("accuracy_per_family", "accuracy_vs_throughput", "action_mix_vs_throughput", "latency_cdf"):
        assert (tmp_path / f"{png}.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "report_meta.json").read_text())["policies"]["cbo"]["tau"] == 0.0

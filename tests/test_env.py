"""envs: checkers, hand-computed timing, single/vector parity, determinism, registration, bad input."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from helpers import constant_trace, hand_profile, outage_trace
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from envs import EnvConfig, OffloadEnv, OffloadVectorEnv
from envs.sb3 import SB3OffloadVecEnv

# 10 fps, 200 ms deadline, edge RTT 30 ms, cloud RTT 50 ms, no student time: every number below is by hand
HAND = EnvConfig(fps=10, deadline_ms=200, edge_rtt_ms=30, cloud_rtt_ms=50, student_ms=0.0,
                 device_ms=0.0, request_ms=0.0, episode_frames=8,
                 profile_split="all", trace_split="all")


def hand_env(trace=None, **changes) -> OffloadEnv:
    return OffloadEnv(hand_profile(), [trace or constant_trace()], HAND.replace(**changes))


def test_frame_that_makes_its_deadline() -> None:
    env = hand_env()
    env.reset(seed=0, options={"start_s": 5.0, "scenes": [0]})
    _, reward, _, _, info = env.step(1)  # 50 kB at 1 MB/s: 50 ms upload + 30 ms RTT + 10 ms compute
    assert info["used_remote"] and not info["late"] and reward == 1.0
    assert info["latency_ms"] == pytest.approx(90.0)
    assert info["bytes"] == 50_000 and info["true_mbps"] == 8.0
    obs, *_ = env.step(0)  # the upload completed before the next frame: its throughput is now measured
    fields = env.observation_fields
    assert obs[fields.index("meas1_log_mbps")] == pytest.approx(np.log10(8.0) / 2, abs=1e-6)
    assert obs[fields.index("meas_count")] == pytest.approx(1 / HAND.history)


def test_v2_timing_adds_the_device_loop_and_the_request_overhead() -> None:
    """v2: the decision comes student + device loop after capture, the answer request_ms after the model."""
    env = hand_env(device_ms=20.0, request_ms=5.0)
    env.reset(seed=0, options={"start_s": 5.0, "scenes": [0]})
    _, _, _, _, info = env.step(0)
    assert info["latency_ms"] == pytest.approx(20.0)  # a local answer: the device loop
    _, _, _, _, info = env.step(1)  # 20 ms loop + 50 ms upload + 30 ms RTT + 10 ms compute + 5 ms request
    assert info["used_remote"] and info["latency_ms"] == pytest.approx(115.0)
    assert env.core.spec.remote_compute_s[0] == pytest.approx(0.015) and env.core.student_s == pytest.approx(0.020)


def test_a_v1_config_record_keeps_v1_timing() -> None:
    """A config dict written before device_ms / request_ms existed rebuilds with the timing its env had (0)."""
    old = {k: v for k, v in EnvConfig().to_dict().items() if k not in ("device_ms", "request_ms")}
    cfg = EnvConfig.from_dict(old)
    assert cfg.device_ms == 0.0 and cfg.request_ms == 0.0
    assert EnvConfig().device_ms > 0 and EnvConfig.from_dict(EnvConfig().to_dict()) == EnvConfig()


def test_reuse_returns_the_cached_answer_and_late_answers_fill_the_cache() -> None:
    env = hand_env()
    names, fields = env.action_names, env.observation_fields
    reuse = names.index("reuse")
    assert names == ["local", "offload@100", "offload@200", "teacher", "reuse"]
    obs, _ = env.reset(seed=0, options={"start_s": 5.0, "scenes": [0, 1, 2]})
    assert obs[fields.index("cache_held")] == 0 and obs[fields.index("cos_prev")] == 0  # episode start
    _, reward, _, _, info = env.step(reuse)  # empty cache: reuse is the local answer (wrong here)
    assert reward == 0.0 and not info["reused"] and info["bytes"] == 0.0
    obs, reward, _, _, info = env.step(1)  # frame 1 offloaded at 100 px: back at 90 ms, right
    assert reward == 1.0 and info["used_remote"]
    # frame 2 (t = 0.2 s): the answer about frame 1 (captured at 0.1 s) is cached
    assert obs[fields.index("cache_held")] == 1 and obs[fields.index("cache_src_offload@100")] == 1
    assert obs[fields.index("cache_age")] == pytest.approx(0.1 / 10, abs=1e-6)
    assert obs[fields.index("cos_cache")] == pytest.approx(1.0) and obs[fields.index("cos_prev")] == pytest.approx(1.0)
    assert obs[fields.index("cache_conf")] == 1.0 and obs[fields.index("cache_agrees")] == 0  # student says 1
    assert obs[fields.index("student_p_cached")] == 0.0  # class 0 is outside the student's top-5
    assert obs[fields.index("dist_local")] == pytest.approx(0.2) and obs[fields.index("dist_teacher")] == pytest.approx(0.95)
    _, reward, _, _, info = env.step(reuse)
    assert reward == 1.0 and info["reused"] and info["bytes"] == 0.0 and info["latency_ms"] == 0.0

    env.reset(seed=0, options={"start_s": 5.0, "scenes": [0, 1, 2]})
    _, _, _, _, info = env.step(3)  # teacher: 250 kB, answer at 320 ms: late for frame 0, cached at 0.32 s
    assert info["late"]
    got = [env.step(reuse)[4]["reused"] for _ in range(3)]  # frames at 0.1, 0.2, 0.3 s: not back yet
    obs, reward, _, _, info = env.step(reuse)  # frame 4 at 0.4 s (scene 1): the late answer serves it
    assert got == [False, False, False] and info["reused"] and reward == 1.0
    assert obs[fields.index("cos_cache")] == pytest.approx(0.0)  # frame 5 is in another scene than frame 0
    assert obs[fields.index("cache_src_teacher")] == 1


def test_frame_late_because_the_link_is_busy() -> None:
    env = hand_env()
    env.reset(seed=0, options={"start_s": 5.0})
    _, r0, _, _, i0 = env.step(3)  # teacher: 250 kB -> link busy until 250 ms; answer at 250 + 50 + 20 = 320 ms
    assert i0["late"] and r0 == 0.0 and i0["latency_ms"] == 200.0
    obs, r1, _, _, i1 = env.step(1)  # frame at 100 ms waits until 250 ms: done 300, answer 340 > 300: late
    assert i1["late"] and not i1["used_remote"] and r1 == 0.0
    # alone, the same frame would have been on time (100 + 50 + 40 = 190 ms < 300 ms)
    alone = hand_env()
    alone.reset(seed=0, options={"start_s": 5.1})
    assert alone.step(1)[4]["used_remote"] is True
    backlog = obs[env.observation_fields.index("backlog")]
    assert backlog == pytest.approx((0.300 - 0.200) / 0.2, abs=1e-5)  # link still busy 100 ms at frame 2


def test_outage_makes_a_frame_late() -> None:
    env = hand_env(outage_trace())
    env.reset(seed=0, options={"start_s": 0.95})
    _, _, _, _, info = env.step(1)  # 50 kB at 0.95 s: 50 kB by 1.0 s, then the outage: done at 1.0 s exactly
    assert info["used_remote"] and info["latency_ms"] == pytest.approx(90.0)
    env.reset(seed=0, options={"start_s": 0.97})
    _, _, _, _, info = env.step(1)  # 30 kB by 1.0 s, outage, 20 kB by 2.02 s: late
    assert info["late"] and info["correct"] is False


def test_send_buffer_refuses_when_full() -> None:
    env = hand_env(constant_trace(0.08), max_queue=2, episode_frames=6)  # 10 kB/s: uploads take seconds
    env.reset(seed=0)
    refused = [env.step(2)[4]["refused"] for _ in range(4)]
    assert refused == [False, False, True, True]


def test_same_seed_same_episode_and_invalid_action() -> None:
    prof, traces = hand_profile(n_clips=5), [constant_trace(), outage_trace()]
    a, b = OffloadEnv(prof, traces, HAND), OffloadEnv(prof, traces, HAND)
    oa, ia = a.reset(seed=42)
    ob, ib = b.reset(seed=42)
    assert np.array_equal(oa, ob) and ia == ib
    rng = np.random.default_rng(0)
    for _ in range(20):
        act = int(rng.integers(4))
        sa, sb = a.step(act), b.step(act)
        assert np.array_equal(sa[0], sb[0]) and sa[1:4] == sb[1:4]
        if sa[3]:
            a.reset(), b.reset()
    with pytest.raises(ValueError, match=r"invalid action 7.*\[0, 5\)"):
        a.step(7)
    with pytest.raises(ValueError, match="unknown reset options"):
        a.reset(options={"trace_id": 1})


def test_config_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="deadline_ms=-1"):
        EnvConfig(deadline_ms=-1)
    with pytest.raises(ValueError, match="profile_split='dev'"):
        EnvConfig(profile_split="dev")
    with pytest.raises(ValueError, match="unknown EnvConfig fields"):
        EnvConfig.from_dict({"fps": 30, "speed": 1})
    assert EnvConfig.from_dict(EnvConfig(trace_families=("fcc",)).to_dict()) == EnvConfig(trace_families=("fcc",))


def test_checkers_pass() -> None:
    env = hand_env(episode_frames=20)
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(hand_env(episode_frames=20))
    gym_check_env(hand_env(oracle_bandwidth=True), skip_render_check=True)


def _rollout_single(prof, traces, cfg, seed: int, actions: np.ndarray) -> list[tuple]:
    env = OffloadEnv(prof, traces, cfg)
    obs, _ = env.reset(seed=seed)
    out, done = [], False
    for a in actions:
        if done:
            obs, _ = env.reset()
            out.append((obs, 0.0, False, False))
            done = False
            continue
        obs, r, te, tr, _ = env.step(int(a))
        out.append((obs, r, te, tr))
        done = te or tr
    return out


def test_vector_env_matches_single_env_trajectory_for_trajectory() -> None:
    prof = hand_profile(n_clips=6)
    traces = [constant_trace(1.0), outage_trace(), constant_trace(3.0, 7.0, "fast")]
    cfg = HAND.replace(episode_frames=7)
    seeds = [3, 7, 11, 19]
    actions = np.random.default_rng(5).integers(0, 4, size=(30, len(seeds)))
    venv = OffloadVectorEnv(len(seeds), prof, traces, cfg)
    obs, _ = venv.reset(seed=seeds)
    singles = [_rollout_single(prof, traces, cfg, s, actions[:, i]) for i, s in enumerate(seeds)]
    for i, s in enumerate(seeds):
        env = OffloadEnv(prof, traces, cfg)
        assert np.array_equal(obs[i], env.reset(seed=s)[0])
    for t in range(len(actions)):
        obs, rew, term, trunc, _ = venv.step(actions[t])
        for i in range(len(seeds)):
            o, r, te, tr = singles[i][t]
            assert np.array_equal(obs[i], o), (t, i)
            assert (rew[i], term[i], trunc[i]) == (r, te, tr), (t, i)


def test_sb3_vec_env_matches_and_reports_terminal_observation() -> None:
    prof, traces = hand_profile(n_clips=4), [constant_trace(1.0), outage_trace()]
    cfg = HAND.replace(episode_frames=5)
    venv = SB3OffloadVecEnv(2, prof, traces, cfg)
    venv.seed(3)
    obs = venv.reset()
    single = OffloadEnv(prof, traces, cfg)
    assert np.array_equal(obs[1], single.reset(seed=4)[0])
    for _ in range(5):
        obs, rew, done, infos = venv.step(np.array([1, 2]))
        so, sr, _, strunc, _ = single.step(2)
        assert rew[1] == pytest.approx(sr)
    assert done.all() and infos[1]["TimeLimit.truncated"]
    assert np.array_equal(infos[1]["terminal_observation"], so)
    assert np.array_equal(obs[1], single.reset()[0])  # same-step reset, same generator


def test_registered_with_vector_entry_point() -> None:
    spec = gym.spec(envs.ENV_ID)
    assert spec.vector_entry_point == "envs.offload_env:OffloadVectorEnv"
    prof, traces = hand_profile(), [constant_trace()]
    venv = gym.make_vec(envs.ENV_ID, num_envs=3, vectorization_mode="vector_entry_point", profile=prof,
                        traces=traces, config=HAND)
    assert isinstance(venv.unwrapped, OffloadVectorEnv) and venv.num_envs == 3
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (3, venv.single_observation_space.shape[0])
    env = gym.make(envs.ENV_ID, profile=prof, traces=traces, config=HAND)
    assert env.reset(seed=0)[0].shape == venv.single_observation_space.shape


def test_device_features_from_raw_signals_equal_env_observation() -> None:
    from offload_common.observation import build_observation

    env = hand_env(constant_trace(2.0), episode_frames=8)
    obs, _ = env.reset(seed=1)
    for a in [1, 2, 0, 3, 1, 1, 0]:
        sig = env.core.device_signals()
        device = build_observation(env.core.spec, sig["topk_prob"], sig["remote_kb"], sig["dist"],
                                   sig["meas_mbps"], sig["signals"])
        assert np.allclose(device[0], obs, atol=1e-6)
        obs = env.step(a)[0]


def test_temporal_fields_count_the_student_top1_run_and_smooth_its_probability() -> None:
    prof = hand_profile(n_clips=2, frames=6)
    top1 = np.array([1, 1, 2, 2, 2, 3, 4, 4, 4, 4, 1, 1])
    cls = np.tile(np.arange(10, 15), (len(top1), 1))
    cls[:, 0] = top1
    prof = dataclasses.replace(prof, student_topk_class=cls)
    cfg = HAND.replace(temporal_observation=True, episode_frames=11)
    env, plain = OffloadEnv(prof, [constant_trace()], cfg), OffloadEnv(prof, [constant_trace()], HAND.replace(
        episode_frames=11))
    fields = env.observation_fields
    assert fields[-2:] == ["top1_stable", "pmax_ema"] and plain.observation_fields == fields[:-2]
    pin = {"start_s": 0.0, "scenes": [0, 1]}
    obs, _ = env.reset(seed=0, options=pin)
    base, _ = plain.reset(seed=0, options=pin)
    prev, run, ema, runs = None, 0, 0.0, []
    for _ in range(11):
        assert np.array_equal(obs[:-2], base)  # the option only appends its two fields
        obs_now = obs
        obs, _, _, _, info = env.step(0)
        base = plain.step(0)[0]
        f = int(info["frame"])
        want_run = run + 1 if prev is not None and top1[f] == top1[prev] else 0
        assert obs_now[-2] == pytest.approx(min(want_run / 15.0, 1.0))
        assert obs_now[-1] == pytest.approx(ema if prev is not None else 0.0, abs=1e-6)
        p = float(prof.student_topk_prob[f, 0])
        ema = p if prev is None else ema + 0.25 * (p - ema)
        prev, run = f, want_run
        runs.append(want_run)
    assert runs == [0, 1, 0, 1, 2, 0, 0, 1, 2, 3, 0]  # across the scene boundary too: the device sees one stream

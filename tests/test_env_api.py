"""envs: the API errors of issue #16, scene pieces of varying length, the profile's fps, the compiled trace lookup."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from helpers import constant_trace, hand_profile, outage_trace

import envs.offload_env
from envs import EnvConfig, OffloadEnv, OffloadVectorEnv, kernel
from envs.sb3 import SB3OffloadVecEnv

HAND = EnvConfig(deadline_ms=200, edge_rtt_ms=30, cloud_rtt_ms=50, student_ms=0.0,
                 device_ms=0.0, request_ms=0.0, episode_frames=8,
                 profile_split="all", trace_split="all")  # fps: the hand profile's 10


# ---- issue #16: clear errors -----------------------------------------------------------------------------------
def test_stepping_past_truncation_says_to_call_reset() -> None:
    env = OffloadEnv(hand_profile(), [constant_trace()], HAND.replace(episode_frames=3))
    env.reset(seed=0)
    assert [env.step(0)[3] for _ in range(3)] == [False, False, True]
    with pytest.raises(RuntimeError, match=r"episode is over \(truncated after 3 frames\): call reset\(\)"):
        env.step(0)
    env.reset()
    assert env.step(0)[3] is False


def test_step_before_reset_is_a_clear_error() -> None:
    prof, traces = hand_profile(), [constant_trace()]
    with pytest.raises(RuntimeError, match=r"step\(\) called before reset\(\)"):
        OffloadEnv(prof, traces, HAND).step(0)
    with pytest.raises(RuntimeError, match=r"step\(\) called before reset\(\) \(env 0\)"):
        OffloadVectorEnv(3, prof, traces, HAND).step(np.zeros(3, np.int64))
    with pytest.raises(RuntimeError, match=r"before reset\(\)"):
        SB3OffloadVecEnv(2, prof, traces, HAND).step(np.zeros(2, np.int64))


def test_vector_env_rejects_bad_actions_before_changing_anything() -> None:
    venv = OffloadVectorEnv(3, hand_profile(), [constant_trace()], HAND)
    venv.reset(seed=0)
    before = venv.core.state.device.copy()
    with pytest.raises(ValueError, match=r"invalid action 9 \(env 2\): expected an integer in \[0, 5\)"):
        venv.step(np.array([1, 1, 9]))
    with pytest.raises(ValueError, match="actions must be 3 integers"):
        venv.step(np.array([0.5, 1, 1]))
    assert np.array_equal(venv.core.state.device, before)


def test_trace_families_string_is_one_family() -> None:
    assert EnvConfig(trace_families="fcc").trace_families == ("fcc",)
    assert EnvConfig(trace_families=["fcc", "hsdpa"]).trace_families == ("fcc", "hsdpa")
    cfg = EnvConfig(trace_families="fcc")
    assert EnvConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"EnvConfig.trace_families=\('fcc', 3\): expected None, a family name"):
        EnvConfig(trace_families=["fcc", 3])


@pytest.mark.parametrize("field, value, expected", [
    ("deadline_ms", "200", "a number"), ("episode_frames", 8.0, "an int"), ("history", True, "an int"),
    ("oracle_bandwidth", "yes", "True or False"), ("reward_baseline", 1, "a string"),
    ("fps", "30", "None or a number"), ("student_ms", [1], "None or a number"), ("trace_families", 3, "None"),
])
def test_config_field_types_are_checked_naming_the_field(field: str, value, expected: str) -> None:
    with pytest.raises(ValueError, match=rf"EnvConfig\.{field}=.*: expected {expected}"):
        EnvConfig(**{field: value})


# ---- scenes of varying length, the profile's fps ----------------------------------------------------------------
def _frames(pieces: np.ndarray, scene_start: np.ndarray, n: int) -> np.ndarray:
    first = scene_start[pieces[:, 0]] + pieces[:, 1]
    return np.concatenate([np.arange(f, f + length) for f, length in zip(first, pieces[:, 2])])[:n]


def test_episodes_are_scene_pieces_of_varying_length() -> None:
    lengths = (15, 30, 120, 17, 44)
    prof = hand_profile(scene_lengths=lengths)
    env = OffloadEnv(prof, [constant_trace(), outage_trace()], HAND.replace(episode_frames=200))
    env.reset(seed=3)
    starts, seen_scenes, seen_lengths = env.core.scene_start, set(), set()
    for _ in range(25):
        ep = env.episode()
        p = ep["pieces"]
        scene_len = np.array(lengths)[p[:, 0]]
        assert ((p[:, 2] >= np.ceil(scene_len / 2)) & (p[:, 2] <= scene_len)).all()
        assert ((p[:, 1] >= 0) & (p[:, 1] + p[:, 2] <= scene_len)).all()
        assert p[:-1, 2].sum() < 201 <= p[:, 2].sum()  # just enough pieces for the episode and its last look
        want = _frames(p, starts, 200)
        got = [env.step(0)[4]["frame"] for _ in range(200)]
        assert np.array_equal(got, want)
        seen_scenes.update(p[:, 0].tolist())
        seen_lengths.update(p[:, 2].tolist())
        env.reset()
    assert seen_scenes == set(range(len(lengths))) and len(seen_lengths) > 40


def test_pinned_pieces_and_scenes_play_in_order_and_repeat() -> None:
    prof = hand_profile(scene_lengths=(5, 9, 3))
    env = OffloadEnv(prof, [constant_trace()], HAND.replace(episode_frames=12))
    env.reset(seed=0, options={"pieces": [(1, 2, 4), (2, 0, 3)], "start_s": 1.0, "trace": 0})
    frames = [env.step(0)[4]["frame"] for _ in range(12)]
    assert frames == [7, 8, 9, 10, 14, 15, 16] + [7, 8, 9, 10, 14]
    env.reset(seed=0, options={"scenes": [2, 0]})
    assert [env.step(0)[4]["frame"] for _ in range(9)] == [14, 15, 16, 0, 1, 2, 3, 4, 14]
    with pytest.raises(ValueError, match=r"episode piece \[1, 6, 4\] is not within its scene"):
        env.reset(options={"pieces": [(1, 6, 4)]})
    with pytest.raises(ValueError, match=r"scenes must be indices in \[0, 3\)"):
        env.reset(options={"scenes": [3]})


def test_frames_play_at_the_profiles_fps() -> None:
    def backlog_after_teacher(prof, cfg) -> float:
        env = OffloadEnv(prof, [constant_trace()], cfg)
        env.reset(seed=0, options={"start_s": 5.0})
        obs = env.step(3)[0]  # teacher: 250 kB at 1 MB/s keeps the link busy 250 ms from frame 0
        return float(obs[env.observation_fields.index("backlog")])

    cfg = HAND.replace(fps=None)
    assert backlog_after_teacher(hand_profile(fps=15.0), cfg) == pytest.approx((0.25 - 1 / 15) / 0.2, abs=1e-6)
    assert backlog_after_teacher(hand_profile(fps=None), cfg) == pytest.approx((0.25 - 1 / 30) / 0.2, abs=1e-6)
    assert backlog_after_teacher(hand_profile(fps=15.0), cfg.replace(fps=15)) > 0
    with pytest.raises(ValueError, match=r"EnvConfig.fps=30 differs from the profile's fps=15.0"):
        OffloadEnv(hand_profile(fps=15.0), [constant_trace()], cfg.replace(fps=30))


def test_seed_gives_the_same_episodes_and_streams_continue() -> None:
    prof, traces = hand_profile(scene_lengths=(15, 30, 22)), [constant_trace(), outage_trace()]
    a, b = OffloadEnv(prof, traces, HAND), OffloadEnv(prof, traces, HAND)
    a.reset(seed=11)
    b.reset(seed=11)
    eps_a, eps_b = [], []
    for env, eps in ((a, eps_a), (b, eps_b)):
        for _ in range(4):
            eps.append(env.episode())
            env.reset()
    for x, y in zip(eps_a, eps_b):
        assert x["trace"] == y["trace"] and x["start_s"] == y["start_s"]
        assert np.array_equal(x["pieces"], y["pieces"])
    assert len({e["start_s"] for e in eps_a}) == 4  # a new episode on every reset without a seed


# ---- the compiled trace lookup is Trace.transfer_time --------------------------------------------------------
def test_kernel_transfer_time_matches_the_traces_own() -> None:
    from bandwidth_traces import embedded_traces

    traces = embedded_traces(seed=0)[:20] + [outage_trace(), constant_trace(0.5)]
    env = OffloadEnv(hand_profile(), traces, HAND)
    rng = np.random.default_rng(0)
    row = rng.integers(len(traces), size=3000)
    start = rng.uniform(0, 3 * np.array([traces[r].duration_s for r in row]))
    nbytes = np.where(rng.random(3000) < 0.1, 0.0, rng.uniform(1, 300_000, 3000))
    want = np.array([traces[r].transfer_time(s, n) for r, s, n in zip(row, start, nbytes)])  # the reference model
    t = env.core.tables
    tabs = (t.trace_segments, t.trace_cum_bits, t.trace_index, t.trace_period)
    hint = rng.integers(0, 50, 3000)  # the search hint changes where the search starts, never its answer
    got = np.array([kernel._transfer_s(*tabs, r, s, n, h) for r, s, n, h in zip(row, start, nbytes, hint)])
    assert np.allclose(got, want, rtol=1e-9, atol=1e-9)
    mbps = np.array([kernel._mbps_at(tabs[0], tabs[2], tabs[3], r, s, h)[0] for r, s, h in zip(row, start, hint)])
    assert np.array_equal(mbps, [traces[r].mbps_at(s) for r, s in zip(row, start)])


def test_the_env_docstring_example_runs() -> None:
    result = doctest.testmod(envs.offload_env, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 5 and result.failed == 0

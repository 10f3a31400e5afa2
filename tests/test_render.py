"""envs.render: ``OffloadEnv(render_mode="rgb_array")`` draws the episode so far, as Gymnasium users expect."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from helpers import constant_trace, hand_profile, outage_trace

from envs import ENV_ID, EnvConfig, OffloadEnv
from envs.render import CORRECT_COLOUR, LOCAL_COLOUR, WRONG_COLOUR, action_colours

# the hand profile: student always wrong, server right at 100 and 200 px, teacher right; 10 fps
HAND = EnvConfig(deadline_ms=200, edge_rtt_ms=30, cloud_rtt_ms=50, student_ms=0.0,
                 device_ms=0.0, request_ms=0.0, episode_frames=12,
                 profile_split="all", trace_split="all")


def _env(render_mode: str | None = "rgb_array", traces=None, config: EnvConfig = HAND) -> gym.Env:
    """Through gym.make, so Gymnasium's passive checker inspects the metadata and the first render."""
    return gym.make(ENV_ID, profile=hand_profile(frames=6), traces=traces or [constant_trace()], config=config,
                    render_mode=render_mode)


def _pixels_like(img: np.ndarray, colour: str | tuple[float, ...], tol: float = 12.0) -> int:
    """Pixels within ``tol`` (per channel, 0-255) of ``colour``: "#rrggbb", or RGB(A) floats in [0, 1]."""
    if isinstance(colour, str):
        rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], float)
    else:
        rgb = 255 * np.array(colour[:3], float)
    return int((np.abs(img.astype(float) - rgb).max(-1) <= tol).sum())


def test_render_draws_the_episode_so_far_as_an_rgb_uint8_image() -> None:
    env = _env()
    env.reset(seed=0)
    first = env.render()
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3 and first.shape[:2] == (600, 800)
    images = [first]
    for _ in range(3):
        env.step(1)
        images.append(env.render())
    assert all(not np.array_equal(a, b) for a, b in zip(images, images[1:])), "every step changes the image"
    env.reset(seed=0)
    assert np.array_equal(env.render(), first), "reset starts a fresh drawing"
    assert env.metadata["render_modes"] == ["rgb_array"] and env.metadata["render_fps"] == 10.0  # the profile's fps


def test_local_only_and_offload_heavy_episodes_look_different() -> None:
    images = {}
    for name, action in (("local", 0), ("offload", 1)):
        env = _env()
        env.reset(seed=0)
        for _ in range(HAND.episode_frames):
            env.step(action)
        images[name] = env.render()
    local, offload = images["local"], images["offload"]
    assert not np.array_equal(local, offload)
    names = env.unwrapped.action_names
    offload_colour = action_colours(names)[names.index("offload@100")]
    # each row of the action panel holds one tick per frame that took that action, in the action's colour
    assert _pixels_like(local, LOCAL_COLOUR) > _pixels_like(offload, LOCAL_COLOUR) + 100
    assert _pixels_like(offload, offload_colour) > _pixels_like(local, offload_colour) + 100
    # the student is always wrong, the server always right and in time: the answer strip is red, or green
    # (the legend shows both colours in both images)
    assert _pixels_like(local, WRONG_COLOUR) > _pixels_like(offload, WRONG_COLOUR) + 1000
    assert _pixels_like(offload, CORRECT_COLOUR) > _pixels_like(local, CORRECT_COLOUR) + 1000


def test_drawing_records_the_state_each_frame_was_decided_in() -> None:
    env = _env(traces=[outage_trace()], config=HAND.replace(episode_frames=20))
    obs, _ = env.reset(seed=0, options={"start_s": 0.0})
    fields = env.unwrapped.observation_fields
    backlog, held, age = (fields.index(f) for f in ("backlog", "cache_held", "cache_age"))
    seen, infos = [], []
    for a in [1, 2] * 10:
        seen.append(obs)
        obs, _, _, _, info = env.step(a)
        infos.append(info)
    seen = np.array(seen)
    drawing = env.unwrapped._drawing
    assert drawing.n == 20
    # backlog and cache age as the observation of that frame showed them (the observation scales and clips them)
    np.testing.assert_allclose(np.minimum(drawing.backlog_s / HAND.deadline_s, 10), seen[:, backlog], atol=1e-5)
    assert drawing.backlog_s.max() > HAND.deadline_s, "the outage makes a backlog"
    held_mask = seen[:, held] > 0.5
    assert held_mask.any() and not held_mask.all()
    assert np.isnan(drawing.cache_age_s[~held_mask]).all()
    np.testing.assert_allclose(np.minimum(drawing.cache_age_s[held_mask] / 10, 1), seen[held_mask, age], atol=1e-5)
    assert drawing.action.tolist() == [i["action"] for i in infos]
    assert drawing.correct.tolist() == [i["correct"] for i in infos]
    assert drawing.fell_back.tolist() == [i["late"] or i["refused"] for i in infos] and drawing.fell_back.any()
    np.testing.assert_allclose(drawing.true_mbps, [i["true_mbps"] for i in infos])
    assert drawing.true_mbps.min() == 0.0 and drawing.true_mbps.max() == 8.0  # the outage is drawn


def test_rendering_changes_nothing_in_the_dynamics() -> None:
    runs = []
    for mode in (None, "rgb_array"):
        env = OffloadEnv(hand_profile(frames=6), [outage_trace()], HAND, render_mode=mode)
        steps = [env.reset(seed=3)[0]]
        for a in np.random.default_rng(0).integers(0, env.action_space.n, HAND.episode_frames):
            steps.append(env.step(int(a)))
            if mode:
                env.render()
        runs.append(steps)
    for plain, drawn in zip(*runs):
        assert repr(plain) == repr(drawn)


def test_render_mode_is_validated_and_none_warns_like_gymnasium() -> None:
    expected = r"render_mode='human' is not supported; expected None or one of \['rgb_array'\]"
    with pytest.raises(ValueError, match=expected):
        OffloadEnv(hand_profile(), [constant_trace()], HAND, render_mode="human")
    with pytest.warns(UserWarning, match="not in the possible render_modes"), \
            pytest.raises(ValueError, match=r"render_mode='ansi' is not supported"):
        gym.make(ENV_ID, profile=hand_profile(), traces=[constant_trace()], config=HAND, render_mode="ansi")
    # Gymnasium's own wrapper turns rgb_array into rgb_array_list
    listed = gym.make(ENV_ID, profile=hand_profile(), traces=[constant_trace()], config=HAND,
                      render_mode="rgb_array_list")
    listed.reset(seed=0)
    listed.step(1)
    assert [f.shape for f in listed.render()] == [(600, 800, 3)] * 2
    env = OffloadEnv(hand_profile(), [constant_trace()], HAND)
    env.reset(seed=0)
    with pytest.warns(UserWarning, match=r'without specifying any render mode.*render_mode="rgb_array"'):
        assert env.render() is None


def test_record_video_writes_an_mp4_of_the_episode(tmp_path) -> None:
    import av

    env = gym.wrappers.RecordVideo(_env(config=HAND.replace(episode_frames=8)), str(tmp_path / "video"),
                                   episode_trigger=lambda _: True, name_prefix="offload")
    env.reset(seed=0)
    truncated = False
    while not truncated:
        _, _, _, truncated, _ = env.step(1)
    env.close()
    (video,) = (tmp_path / "video").glob("offload-episode-0.mp4")
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert float(stream.average_rate) == pytest.approx(10.0)  # the env's render_fps
    assert len(frames) == 9 and frames[0].shape == (600, 800, 3)  # the reset frame, then one per step
    assert np.abs(frames[-1].astype(int) - frames[0].astype(int)).mean() > 1, "the video shows the episode move"

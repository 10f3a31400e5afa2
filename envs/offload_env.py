"""``OffloadEnv`` (one device) and ``OffloadVectorEnv`` (N devices, NumPy-batched) over one dynamics core."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from numpy.typing import NDArray

from bandwidth_traces import Trace
from perception import FrameProfile

from .config import EnvConfig
from .core import OffloadDynamics


@lru_cache(maxsize=4)
def default_inputs(seed: int = 0) -> tuple[FrameProfile, tuple[Trace, ...]]:
    """The committed default profile and the default traces (../shared/traces, else the fitted generator)."""
    from bandwidth_traces import default_traces
    from perception import DEFAULT_PROFILE

    traces, _ = default_traces(seed=seed)
    return FrameProfile.load(DEFAULT_PROFILE), tuple(traces)


def _inputs(profile: FrameProfile | None, traces: Sequence[Trace] | None) -> tuple[FrameProfile, Sequence[Trace]]:
    if profile is None or traces is None:
        d_profile, d_traces = default_inputs()
        profile = d_profile if profile is None else profile
        traces = d_traces if traces is None else traces
    return profile, traces


def _spaces(core: OffloadDynamics) -> tuple[spaces.Box, spaces.Discrete]:
    low, high = core.spec.bounds()
    return spaces.Box(low, high, dtype=np.float32), spaces.Discrete(core.n_actions)


class OffloadEnv(gym.Env):
    """A mobile device deciding, frame by frame, whether to trust its NPU or offload over a real network trace.

    ## Description
    Video frames arrive at ``fps``. For each, the device's int8 student network has already classified it; the
    agent chooses to return that answer, to upload the frame's JPEG at one of R resolutions to an edge server, or
    to send the full frame to the teacher (the most accurate, farthest model). Uploads share one FIFO uplink whose
    throughput follows a real bandwidth trace (wrapping around). An answer counts only if it returns within
    ``deadline_ms`` of capture; otherwise the local answer is used, though the bytes were sent. Every frame's
    outcome under every action comes from a ``perception.FrameProfile`` (real models on real images); clips of
    consecutive frames play in sequence, so confidence and correctness are correlated over time.

    ## Action Space
    ``Discrete(R + 2)``: ``0`` local; ``1..R`` offload at ``profile.resolutions[a - 1]``; ``R + 1`` teacher.

    ## Observation Space
    ``Box(float32, (D,))``, fields documented in ``envs.features`` (one table, shared with the device runtime):

    | fields | what the device knows |
    |---|---|
    | top-k probabilities, margin, entropy | the student's calibrated confidence |
    | last H upload throughputs, count, estimate | measured by its own completed uploads (not the trace) |
    | backlog, pending, time since last measurement | the state of its uplink |
    | recent offload rate, last action (one-hot) | its own recent behaviour |
    | JPEG size and predicted deadline slack per remote action | from this frame's encodings and the estimate |
    | (oracle_bandwidth only) the true current throughput | for ablations |

    ## Rewards
    1 if the answer used is correct, else 0, minus ``byte_cost`` per megabyte sent (default 0).

    ## Episode End
    Truncated after ``episode_frames`` frames; never terminated (the stream goes on).

    ## Info
    ``correct``, ``used_remote``, ``late``, ``refused`` (send buffer full), ``latency_ms``, ``bytes``,
    ``true_mbps`` (trace throughput at decision time), ``action``, ``trace`` (row), ``frame`` (profile index).

    ## Arguments
    ``profile`` (default: the committed profile), ``traces`` (default: ../shared/traces, else the fitted
    generator), ``config`` (``EnvConfig``: timing, costs, splits). Each episode draws a trace, a start offset and
    a sequence of clips from the env's seeded generator, so the same seed gives the identical episode.

    ## Examples
    >>> import gymnasium as gym, envs
    >>> env = gym.make("offload/FrameOffload-v0")
    >>> obs, info = env.reset(seed=0)
    >>> obs, reward, terminated, truncated, info = env.step(0)
    """

    metadata = {"render_modes": []}

    def __init__(self, profile: FrameProfile | None = None, traces: Sequence[Trace] | None = None,
                 config: EnvConfig = EnvConfig()):
        profile, traces = _inputs(profile, traces)
        self.config = config
        self.core = OffloadDynamics(1, profile, traces, config)
        self.observation_space, self.action_space = _spaces(self.core)
        self.action_names = self.core.spec.action_names
        self.observation_fields = self.core.spec.field_names

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode. ``options`` may pin ``trace`` (index into ``env.traces``), ``start_s`` and ``clips``."""
        super().reset(seed=seed)
        self.core.reset_rows([0], [self.np_random])
        if options:
            unknown = set(options) - {"trace", "start_s", "clips"}
            if unknown:
                raise ValueError(f"unknown reset options {sorted(unknown)}; expected trace, start_s, clips")
            self.core.set_episode(0, options.get("trace"), options.get("start_s"), options.get("clips"))
        return self.core.observe()[0], {"trace": int(self.core.row[0]), "start_s": float(self.core.t0[0])}

    @property
    def traces(self) -> list[Trace]:
        """The traces this env replays (after the config's family filter and split)."""
        return self.core.traces

    def step(self, action: int):
        if not self.action_space.contains(action):
            raise ValueError(f"invalid action {action!r}: expected an integer in [0, {self.core.n_actions}) "
                             f"meaning {self.action_names}")
        reward, terminated, truncated, info = self.core.step(np.array([int(action)]))
        return (self.core.observe()[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]),
                {k: v[0].item() for k, v in info.items()})


class OffloadVectorEnv(VectorEnv):
    """``num_envs`` independent ``OffloadEnv`` devices stepped together with NumPy (no Python loop per step).

    Same dynamics as ``OffloadEnv`` (one shared core): sub-env i reset with seed s replays exactly the episode
    ``OffloadEnv`` gives for seed s. ``reset(seed=s)`` seeds sub-envs with s, s + 1, ...; a list seeds each.
    Autoreset follows Gymnasium's default NEXT_STEP mode: the step after an episode ends resets that sub-env
    (its action is ignored, reward 0). ``infos`` holds per-env arrays (with ``_key`` masks).
    For stable-baselines3 use ``envs.sb3.SB3OffloadVecEnv`` (same core, SB3's same-step reset convention).
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 8, profile: FrameProfile | None = None,
                 traces: Sequence[Trace] | None = None, config: EnvConfig = EnvConfig()):
        profile, traces = _inputs(profile, traces)
        self.config = config
        self.num_envs = num_envs
        self.core = OffloadDynamics(num_envs, profile, traces, config)
        self.single_observation_space, self.single_action_space = _spaces(self.core)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.action_names = self.core.spec.action_names
        self.observation_fields = self.core.spec.field_names
        self._rngs: list[np.random.Generator] = [seeding.np_random(None)[0] for _ in range(num_envs)]
        self._autoreset = np.zeros(num_envs, bool)
        self._ones = np.ones(num_envs, bool)

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None):
        if seed is None:
            seeds: Sequence[int | None] = [None] * self.num_envs
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"reset got {len(seeds)} seeds for {self.num_envs} envs")
        self._rngs = [seeding.np_random(s)[0] for s in seeds]
        self.core.reset_rows(range(self.num_envs), self._rngs)
        self._autoreset[:] = False
        return self.core.observe(), {}

    def step(self, actions: NDArray):
        actions = np.asarray(actions)
        done_rows = np.flatnonzero(self._autoreset)
        if done_rows.size:  # their actions are ignored: make them valid so the shared step accepts the batch
            actions = actions.copy()
            actions[done_rows] = 0
        reward, terminated, truncated, info = self.core.step(actions)
        if done_rows.size:
            self.core.reset_rows(done_rows, [self._rngs[i] for i in done_rows])
            reward[done_rows] = 0.0
            terminated[done_rows] = False
            truncated[done_rows] = False
        self._autoreset = terminated | truncated
        mask = self._ones.copy()
        mask[done_rows] = False  # rows that were reset carry no step information
        infos = dict(info)
        infos.update({f"_{k}": mask for k in info})
        return self.core.observe(), reward, terminated, truncated, infos

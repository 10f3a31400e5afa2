"""Paired evaluation of any Policy on held-out traces and scenes, with per-family metrics and bootstrap intervals.

Episodes are fixed before any policy acts: for trace i and repetition j, a generator seeded with (seed, i, j)
draws the start offset and keys the env's own draw of the scene pieces. Every policy therefore faces exactly the
same episodes (same traces, offsets, frames), pinned through the env's public ``pin_episodes``, so differences
between policies are paired.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from agents.policies import Policy
from bandwidth_traces import Trace

EnvFactory = Callable[[int, Sequence[Trace]], Any]  # (num_envs, traces) -> OffloadVectorEnv over exactly those traces


@dataclass(frozen=True)
class Episodes:
    """The fixed episode set: trace index, start offset and scene pieces of each episode.

    ``pieces[e]`` is an int array [n, 3] of (scene, first frame in the scene, length), played in order.
    """

    trace: NDArray[np.int64]
    start_s: NDArray[np.float64]
    pieces: tuple[NDArray[np.int64], ...]

    def __len__(self) -> int:
        return len(self.trace)


def make_episodes(env: Any, episodes_per_trace: int, seed: int) -> Episodes:
    """``episodes_per_trace`` episodes on every trace of ``env``, each from generator (seed, trace, repetition).

    ``env`` (an ``OffloadVectorEnv`` with one sub-env per episode) draws the scene pieces, so they follow the
    env's own rule; it is reset in the process.
    """
    traces = env.traces
    if env.num_envs != len(traces) * episodes_per_trace:
        raise ValueError(f"env has {env.num_envs} sub-envs for {len(traces)} traces x {episodes_per_trace} episodes")
    rows, starts, keys = [], [], []
    for i, trace in enumerate(traces):
        for j in range(episodes_per_trace):
            rng = np.random.default_rng([seed, i, j])
            rows.append(i)
            starts.append(rng.uniform(0.0, trace.duration_s))
            keys.append(int(rng.integers(0, 2 ** 63)))
    env.reset(seed=keys)
    pieces = tuple(episode["pieces"] for episode in env.episodes())
    return Episodes(np.array(rows), np.array(starts), pieces)


@dataclass
class Rollout:
    """Per-step records [E, T] of one policy over an episode set, plus each episode's trace."""

    policy: str
    trace: NDArray[np.int64]
    correct: NDArray[np.bool_]
    used_remote: NDArray[np.bool_]
    late: NDArray[np.bool_]
    refused: NDArray[np.bool_]
    latency_ms: NDArray[np.float64]
    bytes: NDArray[np.float64]
    action: NDArray[np.int64]
    est_mbps: NDArray[np.float64]
    true_mbps: NDArray[np.float64]
    frame: NDArray[np.int64]


@contextmanager
def single_blas_thread() -> Iterator[None]:
    """NumPy's BLAS on one thread inside the block. The NumPy policies' matrix products (learned-greedy's MLP) are
    a few hundred rows: a multithreaded BLAS spends more time waking its threads than multiplying (measured on
    2 busy cores: fitting learned-greedy took 51 s of CPU with 2 BLAS threads, 2.3 s with one)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def rollout(policy: Policy, env: Any, episodes: Episodes) -> Rollout:
    """Run ``policy`` on every episode at once (one vector env row per episode), recording every step."""
    if env.num_envs != len(episodes):
        raise ValueError(f"env has {env.num_envs} sub-envs for {len(episodes)} episodes")
    with single_blas_thread():
        return _rollout(policy, env, episodes)


def _rollout(policy: Policy, env: Any, episodes: Episodes) -> Rollout:
    obs = env.pin_episodes(episodes.trace, episodes.start_s, episodes.pieces)
    policy.attach(env)
    policy.reset()
    est_col = env.observation_fields.index("est_log_mbps")
    rec: dict[str, list] = {k: [] for k in ("correct", "used_remote", "late", "refused", "latency_ms", "bytes",
                                            "action", "true_mbps", "frame")}
    est = []
    for _ in range(env.config.episode_frames):
        est.append(10.0 ** (2.0 * obs[:, est_col].astype(np.float64)))
        obs, _, _, _, info = env.step(policy.act(obs))
        for k in rec:
            rec[k].append(info[k])
    stacked = {k: np.stack(v, 1) for k, v in rec.items()}
    return Rollout(policy=policy.name, trace=episodes.trace.copy(), est_mbps=np.stack(est, 1), **stacked)


def bootstrap_ci(values: NDArray, seed: int, n: int = 2000, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampling episodes)."""
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return float("nan"), float("nan")
    if values.size == 1:
        return float(values[0]), float(values[0])
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, (n, values.size))].mean(1)
    lo, hi = np.percentile(means, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(lo), float(hi)


def summarize(r: Rollout, mask: NDArray[np.bool_], action_names: list[str], seed: int) -> dict[str, Any]:
    """Metrics over the episodes selected by ``mask``."""
    ep_acc = r.correct[mask].mean(1)
    sent = (r.bytes[mask] > 0)
    n_sent = int(sent.sum())
    lat = r.latency_ms[mask].ravel()
    acts = r.action[mask].ravel()
    return {
        "episodes": int(mask.sum()), "frames": int(r.correct[mask].size),
        "accuracy": float(ep_acc.mean()), "accuracy_ci95": list(bootstrap_ci(ep_acc, seed)),
        "deadline_miss_rate": float(r.late[mask].sum() / n_sent) if n_sent else 0.0,
        "remote_used_rate": float(r.used_remote[mask].mean()), "refused_rate": float(r.refused[mask].mean()),
        "mb_per_frame": float(r.bytes[mask].mean() / 1e6),
        "action_mix": {name: float((acts == a).mean()) for a, name in enumerate(action_names)},
        "latency_ms": {f"p{q}": float(np.percentile(lat, q)) for q in (50, 90, 99)},
        "episode_accuracy": ep_acc.round(5).tolist(),
    }


@dataclass
class EvalResult:
    """One policy's metrics per family (and ``all``), its rollout, and what it was."""

    policy: str
    metrics: dict[str, dict[str, Any]]
    rollout: Rollout
    description: dict[str, Any] = field(default_factory=dict)


def evaluate(policy: Policy, env_factory: EnvFactory, traces: Sequence[Trace], episodes: int = 4, seed: int = 0,
             episode_set: Episodes | None = None) -> EvalResult:
    """Evaluate ``policy`` on ``episodes`` fixed episodes per trace; metrics per trace family and overall."""
    env = env_factory(len(traces) * episodes if episode_set is None else len(episode_set), traces)
    eps = make_episodes(env, episodes, seed) if episode_set is None else episode_set
    if len(env.traces) != len(traces):
        raise ValueError(f"env_factory built an env over {len(env.traces)} traces, expected exactly the "
                         f"{len(traces)} given (use trace_split='all' and pre-filtered traces)")
    r = rollout(policy, env, eps)
    fams = np.array([str(env.traces[i].family) for i in eps.trace])
    metrics = {str(fam): summarize(r, fams == fam, env.action_names, seed) for fam in sorted(set(fams.tolist()))}
    metrics["all"] = summarize(r, np.ones(len(eps), bool), env.action_names, seed)
    return EvalResult(policy.name, metrics, r, policy.describe())


def evaluate_many(policies: dict[str, Policy], env_factory: EnvFactory, traces: Sequence[Trace],
                  episodes: int = 4, seed: int = 0, progress: bool = False) -> dict[str, EvalResult]:
    """Evaluate several policies on one shared episode set (paired comparison)."""
    env = env_factory(len(traces) * episodes, traces)
    eps = make_episodes(env, episodes, seed)
    items = list(policies.items())
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc="evaluating", unit="policy")
    out = {}
    for name, pol in items:
        res = evaluate(pol, lambda n, t: env, traces, episodes, seed, episode_set=eps)
        res.policy = name
        out[name] = res
    return out

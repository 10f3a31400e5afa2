"""Fitting learned-greedy's model (``agents.policies.greedy``) on rollouts over training traces x training scenes.

``greedy_data`` rolls a behaviour policy (with a share ``epsilon`` of uniformly random actions, so that every
action is taken in every kind of state) over fixed episodes of the training traces and training scenes, and
records every observation with the label of EVERY action at it, read in hindsight from the env's ``preview()``
(would the answer used be right: remote answers count only when back before the deadline, else the student's
answer is used; reuse counts only when a remote answer is held). ``fit_mlp`` fits the per-action logistic outputs
by Adam on the binary cross-entropy, in NumPy (seeded, deterministic), keeping the epoch with the lowest loss on
a held-out share of the training traces. ``fit_learned_greedy`` does both and returns the ``GreedyModel``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from agents.policies import GreedyModel, Policy
from bandwidth_traces import split as split_traces

from .rollout import make_episodes, single_blas_thread

if TYPE_CHECKING:
    from .suite import Setup


def action_labels(env: Any, obs: NDArray[np.float32]) -> NDArray[np.bool_]:
    """[B, A]: whether the answer the current frame would use is right, for every action (hindsight)."""
    p = env.preview()
    names = env.action_names
    remote = env.observation_spec.remote_names
    student = p["student_correct"]
    held = obs[:, env.observation_fields.index("cache_held")] > 0.5
    y = np.empty((len(obs), len(names)), bool)
    for a, name in enumerate(names):
        if name == "local":
            y[:, a] = student
        elif name == "reuse":
            y[:, a] = np.where(held, p["reuse_correct"], student)
        else:
            r = remote.index(name)
            y[:, a] = np.where(p["on_time"][:, r], p["correct"][:, r], student)
    return y


def greedy_data(setup: Setup, traces: Sequence, behaviour: Policy, episodes: int, seed: int,
                epsilon: float = 0.3) -> tuple[NDArray[np.float32], NDArray[np.bool_], list[str]]:
    """Observations [N, D], per-action labels [N, A] and the observation's field names, of ``behaviour``
    (epsilon-random) on ``episodes`` episodes per trace of ``traces`` (training traces) x training scenes."""
    env = setup.factory("train")(len(traces) * episodes, traces)
    eps = make_episodes(env, episodes, seed)
    obs = env.pin_episodes(eps.trace, eps.start_s, eps.pieces)
    behaviour.attach(env)
    behaviour.reset()
    rng = np.random.default_rng([seed, 77])
    xs, ys = [], []
    n_actions = len(env.action_names)
    for _ in range(env.config.episode_frames):
        xs.append(obs.copy())
        ys.append(action_labels(env, obs))
        act = behaviour.act(obs)
        explore = rng.random(len(obs)) < epsilon
        act = np.where(explore, rng.integers(0, n_actions, len(obs)), act)
        obs, _, _, _, _ = env.step(act)
    return np.concatenate(xs), np.concatenate(ys), list(env.observation_fields)


def _init(dims: Sequence[int], rng: np.random.Generator) -> tuple[list[NDArray], list[NDArray]]:
    ws = [(rng.standard_normal((a, b)) * np.sqrt(1.0 / a)).astype(np.float32) for a, b in zip(dims, dims[1:])]
    return ws, [np.zeros(b, np.float32) for b in dims[1:]]


def _bce(p: NDArray, y: NDArray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def fit_mlp(x: NDArray[np.float32], y: NDArray[np.bool_], x_val: NDArray[np.float32], y_val: NDArray[np.bool_],
            fields: list[str], actions: list[str], hidden: Sequence[int] = (64, 64), epochs: int = 12,
            batch: int = 512, lr: float = 2e-3, l2: float = 1e-5, seed: int = 0, min_steps: int = 400
            ) -> GreedyModel:
    """Adam on the mean binary cross-entropy of every action's output; returns the epoch with the lowest loss on
    (x_val, y_val). Inputs are standardised with the training data's mean and spread. Small data sets get more
    epochs, so that at least ``min_steps`` gradient steps are taken."""
    if len(x) == 0 or len(x_val) == 0:
        raise ValueError(f"learned-greedy: no training samples ({len(x)}) or no validation samples ({len(x_val)})")
    rng = np.random.default_rng(seed)
    mean = x.mean(0).astype(np.float32)
    scale = np.maximum(x.std(0), 1e-3).astype(np.float32)
    xs = ((x - mean) / scale).astype(np.float32)
    yf = y.astype(np.float32)
    ws, bs = _init([x.shape[1], *hidden, y.shape[1]], rng)
    params = [*ws, *bs]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    t = 0
    n_layers = len(ws)

    def model(ws_: list[NDArray], bs_: list[NDArray], info: dict[str, Any] | None = None) -> GreedyModel:
        return GreedyModel(mean, scale, [w.copy() for w in ws_], [b.copy() for b in bs_], list(fields),
                           list(actions), dict(info or {}))

    epochs = max(epochs, -(-min_steps // -(-len(xs) // batch)))
    best = (np.inf, model(ws, bs), 0)
    for epoch in range(epochs):
        order = rng.permutation(len(xs))
        for start in range(0, len(xs), batch):
            idx = order[start:start + batch]
            hs = [xs[idx]]
            for k in range(n_layers):
                z = hs[-1] @ ws[k] + bs[k]
                hs.append(np.tanh(z) if k < n_layers - 1 else z)
            p = 1.0 / (1.0 + np.exp(-np.clip(hs[-1], -30, 30)))
            grad = (p - yf[idx]) / (len(idx) * yf.shape[1])
            gw, gb = [None] * n_layers, [None] * n_layers
            for k in range(n_layers - 1, -1, -1):
                gw[k] = hs[k].T @ grad + l2 * ws[k]
                gb[k] = grad.sum(0)
                if k:
                    grad = (grad @ ws[k].T) * (1.0 - hs[k] ** 2)
            t += 1
            for i, g in enumerate([*gw, *gb]):
                m[i] = 0.9 * m[i] + 0.1 * g
                v[i] = 0.999 * v[i] + 0.001 * g * g
                params[i] -= lr * (m[i] / (1 - 0.9 ** t)) / (np.sqrt(v[i] / (1 - 0.999 ** t)) + 1e-8)
        current = model(ws, bs)
        loss = _bce(current.predict(x_val), y_val)
        if loss < best[0]:
            best = (loss, current, epoch + 1)
    loss, chosen, epoch = best
    chosen.info = {"samples": int(len(x)), "validation_samples": int(len(x_val)), "epochs": epochs,
                   "best_epoch": epoch, "validation_bce": round(loss, 5),
                   "validation_bce_constant": round(_bce(np.broadcast_to(y.mean(0), y_val.shape), y_val), 5)}
    return chosen


MIN_VALIDATION_TRACES = 10  # fewer training traces: the validation episodes are other episodes of the same traces


def fit_learned_greedy(setup: Setup, behaviour: Policy, seed: int = 0, episodes: int = 2, epsilon: float = 0.3,
                       val_fraction: float = 0.2, **fit: Any) -> GreedyModel:
    """learned-greedy's model, fitted on ``behaviour``'s (epsilon-random) rollouts over the training traces x
    training scenes only; its validation loss is read on a held-out share of the training traces (on other
    episodes of the same traces when there are fewer than ``MIN_VALIDATION_TRACES``)."""
    t0 = time.time()
    traces = list(setup.train_traces)
    if len(traces) >= MIN_VALIDATION_TRACES:
        fit_traces, val_traces = split_traces(traces, val_fraction, seed + 11)
        val_traces = val_traces or fit_traces  # every family holds one trace: validate on the fitting traces
    else:  # a share of a handful of traces says more about those traces than about the model
        fit_traces = val_traces = traces
    with single_blas_thread():
        x, y, fields = greedy_data(setup, fit_traces, behaviour, episodes, seed + 21, epsilon)
        xv, yv, _ = greedy_data(setup, val_traces, behaviour, 1, seed + 31, epsilon)
        model = fit_mlp(x, y, xv, yv, fields, setup.action_names(), seed=seed, **fit)
    model.info.update({"behaviour": behaviour.name, "epsilon": epsilon, "episodes_per_trace": episodes,
                       "fit_traces": len(fit_traces), "validation_traces": len(val_traces),
                       "seconds": round(time.time() - t0, 1)})
    return model

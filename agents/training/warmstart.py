"""Warm start of an SB3 actor-critic from a tuned reference policy: behaviour cloning, then PPO.

PPO from scratch spends its first few hundred thousand steps learning what a tuned heuristic already knows
(from scratch, validation accuracy passed cachenet's only late in 1.5 M steps); the main job therefore clones
learned-greedy first (``run --warm-start``, its default). ``behaviour_clone`` rolls the
teacher (e.g. the tuned cachenet or learned-greedy, tuned on training traces x training scenes only) over fixed
episodes of the FITTING traces (the validation traces stay unseen) with a share ``epsilon`` of random actions
(so the clone also sees the states just off the teacher's path), and fits the network to it before PPO starts:
the actor by cross-entropy to the teacher's action at every visited state, the critic by regression on the
discounted return of the training reward from that state (so PPO's first advantages are not a random critic's).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from agents.evaluation import deal, make_episodes
from agents.policies import Policy


def teacher_data(profile: Any, traces: Sequence, env_cfg: Any, teacher: Policy, episodes: int, seed: int,
                 gamma: float, epsilon: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observations [N, D], the teacher's actions [N] and the discounted returns [N] of the training reward."""
    from envs import OffloadVectorEnv

    env = OffloadVectorEnv(len(traces) * episodes, profile, traces, env_cfg)
    eps = make_episodes(env, episodes, seed)
    obs = env.pin_episodes(eps.trace, eps.start_s, eps.pieces)
    teacher.attach(env)
    teacher.reset()
    rng = np.random.default_rng([seed, 5])
    xs, acts, rewards = [], [], []
    n_actions = len(env.action_names)
    for _ in range(env_cfg.episode_frames):
        xs.append(obs.copy())
        want = teacher.act(obs)
        acts.append(want)
        take = np.where(rng.random(len(obs)) < epsilon, rng.integers(0, n_actions, len(obs)), want)
        obs, reward, _, _, _ = env.step(take)
        rewards.append(reward.astype(np.float64))
    r = np.stack(rewards, 1)  # [E, T]
    ret = np.zeros_like(r)
    acc = np.zeros(r.shape[0])
    for t in range(r.shape[1] - 1, -1, -1):
        acc = r[:, t] + gamma * acc
        ret[:, t] = acc
    x = np.stack(xs, 1).reshape(-1, xs[0].shape[1])
    return x, np.stack(acts, 1).reshape(-1), ret.reshape(-1)


def behaviour_clone(model: Any, profile: Any, sources: Sequence[tuple[Sequence, Policy]], env_cfgs: Sequence[Any],
                    seed: int, gamma: float, episodes: int = 2, epsilon: float = 0.1, epochs: int = 4,
                    batch: int = 1024, lr: float = 1e-3, value_weight: float = 0.5,
                    min_steps: int = 200) -> dict[str, Any]:
    """Fit ``model.policy`` (an SB3 ActorCriticPolicy) to the teachers of ``sources`` (pairs of fitting traces and
    the teacher that acts on them: one pair, or one per training speed with the teacher re-tuned at that speed;
    ``epochs`` passes, more for small data so that at least ``min_steps`` gradient steps are taken); returns what
    was done (samples, epochs, the clone's agreement with the teachers, seconds) for the run's record.

    ``env_cfgs`` are the training env's configs (one per training deadline): each source's traces are dealt
    round-robin over them, so the clone sees every deadline trained at and as many states as with one config."""
    import torch

    t0 = time.time()
    data = [teacher_data(profile, hand, cfg, teacher, episodes, seed, gamma, epsilon)
            for traces, teacher in sources for cfg, hand in zip(env_cfgs, deal(traces, len(env_cfgs))) if hand]
    x, a, ret = (np.concatenate(parts) for parts in zip(*data))
    pol = model.policy
    relabelled = 0
    masked = getattr(pol, "spec", None) is not None  # trained with TrainConfig.action_mask
    if masked:  # a masked policy cannot take what its mask rules out: the teacher's send into
        # a full buffer, or reuse without a cached answer, is cloned as what the env makes of it, the local answer
        from offload_common.observation import action_mask

        ruled_out = ~action_mask(pol.spec, x)[np.arange(len(a)), a]
        relabelled = int(ruled_out.sum())
        a = np.where(ruled_out, 0, a)
    opt = torch.optim.Adam(pol.parameters(), lr=lr)
    xt = torch.as_tensor(x, dtype=torch.float32)
    at = torch.as_tensor(a, dtype=torch.int64)
    rt = torch.as_tensor(ret, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    pol.set_training_mode(True)
    epochs = max(epochs, -(-min_steps // -(-len(xt) // batch)))
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=gen)
        for start in range(0, len(xt), batch):
            idx = order[start:start + batch]
            values, log_prob, _ = pol.evaluate_actions(xt[idx], at[idx])
            loss = -log_prob.mean() + value_weight * torch.nn.functional.mse_loss(values.flatten(), rt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    pol.set_training_mode(False)
    with torch.no_grad():
        agree = float((pol.get_distribution(xt).distribution.probs.argmax(1) == at).float().mean())
    names = list(dict.fromkeys(teacher.name for _, teacher in sources))
    return {"teacher": names[0] if len(names) == 1 else names,
            **({"teachers": len(sources)} if len(sources) > 1 else {}),
            "samples": int(len(x)), "epochs": epochs, "epsilon": epsilon,
            **({"masked_as_local": relabelled} if masked else {}),
            "agreement": round(agree, 4), "seconds": round(time.time() - t0, 1)}

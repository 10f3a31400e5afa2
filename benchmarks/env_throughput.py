"""Environment steps per second: OffloadEnv, OffloadVectorEnv (64 and 1,024 envs), SB3 VecEnv, and CartPole-v1.

CartPole is measured in the same run as the reference, so the ratio is meaningful on a shared, noisy machine.
Goals (issue #5): single env >= CartPole's rate; batched >= 5 million env-steps/s at 1,024 envs.

    python benchmarks/env_throughput.py [--out PATH] [--seconds S]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import rate, write_json  # noqa: E402

from envs import EnvConfig, OffloadEnv, OffloadVectorEnv, default_inputs  # noqa: E402
from envs.sb3 import SB3OffloadVecEnv  # noqa: E402


def single_env_rate(env: gym.Env, n_actions: int, seconds: float) -> float:
    actions = np.random.default_rng(0).integers(0, n_actions, 4096).tolist()
    env.reset(seed=0)

    def run() -> int:
        for a in actions:
            _, _, term, trunc, _ = env.step(a)
            if term or trunc:
                env.reset()
        return len(actions)

    return rate(run, seconds)


def vector_rate(venv, seconds: float) -> float:
    n = venv.num_envs
    actions = np.random.default_rng(0).integers(0, venv.single_action_space.n, (64, n))
    venv.reset(seed=0)

    def run() -> int:
        for a in actions:
            venv.step(a)
        return len(actions) * n

    return rate(run, seconds)


def sb3_rate(venv: SB3OffloadVecEnv, seconds: float) -> float:
    n = venv.num_envs
    actions = np.random.default_rng(0).integers(0, venv.action_space.n, (64, n))
    venv.seed(0)
    venv.reset()

    def run() -> int:
        for a in actions:
            venv.step(a)
        return len(actions) * n

    return rate(run, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/env_throughput.json"))
    parser.add_argument("--seconds", type=float, default=3.0, help="timing window per case")
    args = parser.parse_args()
    profile, traces = default_inputs()
    cfg = EnvConfig()
    rows = []
    cart = single_env_rate(gym.make("CartPole-v1").unwrapped, 2, args.seconds)
    rows.append(("CartPole-v1 (unwrapped, reference)", 1, cart))
    single = OffloadEnv(profile, traces, cfg)
    rows.append(("OffloadEnv", 1, single_env_rate(single, single.action_space.n, args.seconds)))
    for n in (64, 1024):
        rows.append((f"OffloadVectorEnv", n, vector_rate(OffloadVectorEnv(n, profile, traces, cfg), args.seconds)))
    rows.append(("SB3OffloadVecEnv", 1024, sb3_rate(SB3OffloadVecEnv(1024, profile, traces, cfg), args.seconds)))
    print(f"{'environment':<36} {'envs':>5} {'env-steps/s':>14} {'x CartPole':>11}")
    for name, n, r in rows:
        print(f"{name:<36} {n:>5} {r:>14,.0f} {r / cart:>11.2f}")
    write_json(args.out, {"benchmark": "env_throughput", "seconds_per_case": args.seconds, "traces": len(traces),
                          "profile_frames": profile.n_frames,
                          "results": [{"env": name, "num_envs": n, "steps_per_s": r, "ratio_to_cartpole": r / cart}
                                      for name, n, r in rows]})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

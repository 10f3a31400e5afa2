"""Environment steps per second against two references measured in the same run, plus compile and RLlib times.

Rows: CartPole-v1 (unwrapped, the single-env reference), Gymnasium's NumPy ``CartPoleVectorEnv`` at 1,024 envs
(the batched reference), OffloadEnv, OffloadVectorEnv (64 and 1,024 envs), SB3OffloadVecEnv (1,024). Ratios are
taken within the run, so they hold on a shared, noisy machine. Also: the kernel's first-call compile time, cold
(empty Numba cache, in a fresh process) and cached (a second fresh process), and with ``--rllib`` RLlib PPO
env-steps/s with 0 and 2 EnvRunners (the project's TrainConfig otherwise: 8 envs each, 8,192-step iterations).
Goals (issue #13): OffloadEnv >= 1.0x CartPole-v1; OffloadVectorEnv at 1,024 >= 1.0x CartPoleVectorEnv at 1,024;
RLlib PPO with 2 EnvRunners >= 3x the 1.9k steps/s measured before the compiled core.

    python benchmarks/env_throughput.py [--out PATH] [--seconds S] [--rllib] [--rllib-iterations N]

``--rllib-only`` runs just the RLlib part (e.g. with PYTHONPATH at an older checkout, for the "before" figure).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import rate, write_json  # noqa: E402

from offload_common.files import check_output_file  # noqa: E402


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


def vector_rate(venv: Any, n_actions: int, seconds: float) -> float:
    """Gymnasium VectorEnv protocol (autoreset inside): env-steps/s over random actions."""
    n = venv.num_envs
    actions = np.random.default_rng(0).integers(0, n_actions, (64, n))
    venv.reset(seed=0)

    def run() -> int:
        for a in actions:
            venv.step(a)
        return len(actions) * n

    return rate(run, seconds)


def sb3_rate(venv: Any, seconds: float) -> float:
    n = venv.num_envs
    actions = np.random.default_rng(0).integers(0, venv.action_space.n, (64, n))
    venv.seed(0)
    venv.reset()

    def run() -> int:
        for a in actions:
            venv.step(a)
        return len(actions) * n

    return rate(run, seconds)


_COMPILE_PROBE = ("import time; t = time.perf_counter(); "
                  "from envs import OffloadEnv, EnvConfig, default_inputs; p, tr = default_inputs(); "
                  "t1 = time.perf_counter(); e = OffloadEnv(p, tr, EnvConfig()); e.reset(seed=0); e.step(1); "
                  "print(time.perf_counter() - t1)")


def compile_seconds() -> dict[str, float]:
    """Seconds from building the first env to its first step, in fresh processes: empty Numba cache, then cached.

    The cold case points ``NUMBA_CACHE_DIR`` at an empty folder, so the real cache is neither used nor touched.
    """
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        for label in ("cold", "cached"):
            env = {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": str(ROOT)}
            res = subprocess.run([sys.executable, "-c", _COMPILE_PROBE], cwd=ROOT, env=env, capture_output=True,
                                 text=True, check=True)
            out[label] = float(res.stdout.strip().splitlines()[-1])
    return out


def _rllib_env(env_config: dict[str, Any]):
    from envs import EnvConfig, OffloadEnv, default_inputs

    profile, traces = default_inputs()
    return OffloadEnv(profile, traces, EnvConfig(episode_frames=env_config.get("episode_frames", 300)))


def rllib_rates(runners: tuple[int, ...], iterations: int) -> dict[int, dict[str, float]]:
    """RLlib PPO (new API stack) with the project's ``TrainConfig`` defaults (8 envs per EnvRunner, 8,192-step
    batches, 10 epochs, 256x256) and 0 or 2 EnvRunners, after one warm-up iteration.

    Per setting: ``iteration`` env-steps/s (sampled steps over the iterations' wall time, sampling and learning,
    the issue's measure) and ``sampling`` env-steps/s (collecting one batch as PPO does, without the learner).
    """
    import ray
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
    from ray.rllib.execution.rollout_ops import synchronous_parallel_sample
    from ray.tune.registry import register_env

    import envs
    from agents.training import TrainConfig
    try:
        from agents.training import init_ray  # the project's local Ray: dashboard off, loopback only
    except ImportError:  # an older checkout (--rllib-only with PYTHONPATH there, for a "before" figure)
        def init_ray(num_cpus: int) -> None:
            ray.init(include_dashboard=False, num_cpus=num_cpus, log_to_driver=False, configure_logging=False)

    checkout = Path(envs.__file__).resolve().parents[1]  # the envs this process imports (PYTHONPATH may pick one)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(checkout), *sys.path])  # ... and so do the EnvRunners
    print(f"RLlib over {checkout}")
    cfg = TrainConfig(framework="rllib")
    init_ray(num_cpus=max(runners) + 1)
    register_env("offload-bench", _rllib_env)
    out = {}
    try:
        for n in runners:
            algo = (PPOConfig().environment("offload-bench", env_config={"episode_frames": 300})
                    .env_runners(num_env_runners=n, num_envs_per_env_runner=cfg.envs_per_runner,
                                 rollout_fragment_length="auto")
                    .learners(num_learners=0)
                    .training(**cfg.rllib_training())
                    .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=list(cfg.net_arch),
                                                               fcnet_activation="tanh"))
                    .debugging(seed=0)).build_algo()
            algo.train()  # warm-up: worker start, first compile from cache, torch threads
            steps, t0 = 0, time.perf_counter()
            for _ in range(iterations):
                steps += int(algo.train()["env_runners"]["num_env_steps_sampled"])
            iteration = steps / (time.perf_counter() - t0)
            sampled, t0 = 0, time.perf_counter()  # sampling alone: what PPO's training_step collects, no learner
            for _ in range(iterations):
                episodes = synchronous_parallel_sample(worker_set=algo.env_runner_group,
                                                       max_env_steps=cfg.train_batch, _uses_new_env_runners=True)
                sampled += sum(e.env_steps() for e in episodes)
            out[n] = {"iteration": iteration, "sampling": sampled / (time.perf_counter() - t0)}
            algo.stop()
    finally:
        ray.shutdown()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/env_throughput.json"))
    parser.add_argument("--seconds", type=float, default=3.0, help="timing window per case")
    parser.add_argument("--rllib", action="store_true", help="also time RLlib PPO with 0 and 2 EnvRunners")
    parser.add_argument("--rllib-only", action="store_true", help="only the RLlib part")
    parser.add_argument("--rllib-iterations", type=int, default=3)
    args = parser.parse_args()
    try:  # before any timing: a bad --out fails at once
        check_output_file(args.out, "--out")
    except ValueError as exc:
        parser.error(str(exc))
    payload: dict[str, Any] = {"benchmark": "env_throughput", "seconds_per_case": args.seconds}
    if not args.rllib_only:
        from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

        from envs import EnvConfig, OffloadEnv, OffloadVectorEnv, default_inputs
        from envs.sb3 import SB3OffloadVecEnv

        payload["compile_s"] = compile_seconds()
        profile, traces = default_inputs()
        cfg = EnvConfig()
        cart = single_env_rate(gym.make("CartPole-v1").unwrapped, 2, args.seconds)
        cart_vec = vector_rate(CartPoleVectorEnv(num_envs=1024), 2, args.seconds)
        rows = [("CartPole-v1 (unwrapped, reference)", 1, cart, cart),
                ("CartPoleVectorEnv (reference)", 1024, cart_vec, cart_vec)]
        single = OffloadEnv(profile, traces, cfg)
        rows.append(("OffloadEnv", 1, single_env_rate(single, single.action_space.n, args.seconds), cart))
        for n in (64, 1024):
            venv = OffloadVectorEnv(n, profile, traces, cfg)
            rows.append(("OffloadVectorEnv", n, vector_rate(venv, venv.single_action_space.n, args.seconds),
                         cart_vec))
        rows.append(("SB3OffloadVecEnv", 1024, sb3_rate(SB3OffloadVecEnv(1024, profile, traces, cfg), args.seconds),
                     cart_vec))
        print(f"{'environment':<36} {'envs':>5} {'env-steps/s':>14} {'x reference':>12}  reference")
        for name, n, r, ref in rows:
            print(f"{name:<36} {n:>5} {r:>14,.0f} {r / ref:>12.2f}  {'CartPole-v1' if ref == cart else 'CartPoleVectorEnv'}")
        print(f"first-call compile: cold {payload['compile_s']['cold']:.1f} s, "
              f"cached {payload['compile_s']['cached']:.2f} s")
        payload.update({"traces": len(traces), "profile_frames": profile.n_frames,
                        "results": [{"env": name, "num_envs": n, "steps_per_s": r, "reference_steps_per_s": ref,
                                     "ratio_to_reference": r / ref, "ratio_to_cartpole": r / cart}
                                    for name, n, r, ref in rows]})
    if args.rllib or args.rllib_only:
        rl = rllib_rates((0, 2), args.rllib_iterations)
        for n, r in rl.items():
            print(f"RLlib PPO, {n} EnvRunners: {r['iteration']:,.0f} env-steps/s per iteration "
                  f"(sampling alone {r['sampling']:,.0f})")
        payload["rllib_ppo_steps_per_s"] = {str(n): r for n, r in rl.items()}
    write_json(args.out, payload)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

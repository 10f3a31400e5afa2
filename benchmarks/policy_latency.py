"""Decision latency of a learned policy at batch 1: ONNX Runtime vs the PyTorch forward of the same network.

Measured side by side in one run (interleaved), median and p99 over many single decisions, plus model sizes.
Goal (issue #9): <= 20 us median per decision with ONNX Runtime.

    python benchmarks/policy_latency.py [--run RUN_DIR] [--out PATH] [--n 20000]

Without --run, a freshly initialised PPO policy of the default architecture is exported and timed (latency
depends on the architecture, not on the weights).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_json  # noqa: E402

from offload_common.files import check_output_file  # noqa: E402


def _model_and_onnx(run: Path | None, tmp: Path):
    from agents.deploy import export_model, export_run
    from agents.training import TrainConfig, load_run_model

    if run is not None:
        return load_run_model(run)[0], export_run(run, tmp / "policy.onnx")
    from stable_baselines3 import PPO

    from envs import EnvConfig, default_inputs
    from envs.sb3 import SB3OffloadVecEnv

    profile, traces = default_inputs()
    venv = SB3OffloadVecEnv(2, profile, traces, EnvConfig())
    model = PPO("MlpPolicy", venv, device="cpu", seed=0,
                policy_kwargs={"net_arch": list(TrainConfig().net_arch)})
    spec = venv.observation_spec
    return model, export_model(model, tmp / "policy.onnx", spec.field_names, spec.action_names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=None, help="training run folder (default: fresh policy)")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/policy_latency.json"))
    parser.add_argument("--n", type=int, default=20_000, help="decisions timed per runtime")
    args = parser.parse_args()
    try:  # before any timing: a bad --out fails at once
        check_output_file(args.out, "--out")
    except ValueError as exc:
        parser.error(str(exc))

    import torch

    from agents.deploy import OnnxPolicy
    from agents.policies import greedy_module

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        model, onnx_path = _model_and_onnx(args.run, Path(tmp))
        onnx_kb = onnx_path.stat().st_size / 1024
        ort_policy = OnnxPolicy(onnx_path, threads=1)
        actor = greedy_module(model)
        dim = ort_policy.dim
        obs = np.random.default_rng(0).uniform(0, 1, (256, 1, dim)).astype(np.float32)
        session, feed_name = ort_policy.session, "obs"

        def ort_raw(o):  # the bare session call
            return session.run(["action"], {feed_name: o})

        def ort_checked(o):  # with OnnxPolicy's input validation (what a device app would call)
            return ort_policy.act(o)

        def torch_forward(o):
            with torch.inference_mode():
                return actor(torch.from_numpy(o))[1]

        cases = {"onnxruntime (session.run)": ort_raw, "onnxruntime (OnnxPolicy.act, validated)": ort_checked,
                 "pytorch (same network)": torch_forward}
        times = {k: [] for k in cases}
        for fn in cases.values():  # warm-up
            for i in range(200):
                fn(obs[i % 256])
        for i in range(args.n):  # interleaved so machine noise hits all runtimes alike
            o = obs[i % 256]
            for k, fn in cases.items():
                t0 = time.perf_counter_ns()
                fn(o)
                times[k].append(time.perf_counter_ns() - t0)
        pol = model.policy  # only the exported (greedy) path counts: no critic
        exported = [pol.q_net] if hasattr(pol, "q_net") else [pol.mlp_extractor.policy_net, pol.action_net]
        params = sum(p.numel() for m in exported for p in m.parameters())
        rows = [(k, np.median(v) / 1e3, np.percentile(v, 99) / 1e3) for k, v in times.items()]
    print(f"policy: {dim} inputs, {params:,} parameters; ONNX file {onnx_kb:.1f} kB; "
          f"PyTorch weights {params * 4 / 1024:.1f} kB (float32)")
    print(f"{'runtime (batch 1, 1 thread)':<42} {'median us':>10} {'p99 us':>10}")
    for k, med, p99 in rows:
        print(f"{k:<42} {med:>10.1f} {p99:>10.1f}")
    write_json(args.out, {"benchmark": "policy_latency", "decisions": args.n, "observation_dim": dim,
                          "parameters": int(params), "onnx_kb": onnx_kb,
                          "results": [{"runtime": k, "median_us": m, "p99_us": p} for k, m, p in rows],
                          "source": str(args.run) if args.run else "fresh PPO policy, default architecture"})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

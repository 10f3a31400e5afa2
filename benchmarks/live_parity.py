"""Sim vs live over several test traces: one `train_agent.py live` run per trace, one table + JSON.

    python benchmarks/live_parity.py --bundle BUNDLE [--policy cachenet] [--fcc 3] [--norway 2] [--seconds 60]
        [--scenes 40] [--start-s 20] [--slowdown auto] [--out runs/live-parity]

Test traces are the first of each family's held-out side (``bandwidth_traces.split``, the env's default split).
One edge server is started for all runs (its ONNX exports cached). Per run the live report is in OUT/<trace>/;
the table gives live and sim accuracy, MB/frame, median latency, action agreement and faults, and the goals of
issue 22 (accuracy within 1 point, agreement >= 95%, median latency error <= 10%).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]  # this checkout first
from common import write_json  # noqa: E402


def main() -> int:
    root = Path(__file__).resolve().parents[1]
    from agents.live import LiveConfig, ServerProcess, run_live
    from bandwidth_traces import load_traces, shared_traces_dir, split
    from offload_common.cli import slowdown_value

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--policy", default="cachenet")
    p.add_argument("--params", default=None, help="the heuristic's parameters as JSON")
    p.add_argument("--fcc", type=int, default=3)
    p.add_argument("--norway", type=int, default=2)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--scenes", type=int, default=40)
    p.add_argument("--start-s", type=float, default=20.0)
    p.add_argument("--slowdown", type=slowdown_value, default="auto", help="time dilation K, or 'auto' (this machine's "
                   "int8 student latency over the profile's: emulate the profile's machine)")
    p.add_argument("--cache-dir", type=Path, default=None)
    p.add_argument("--out", type=Path, default=root / "runs" / "live-parity")
    args = p.parse_args()
    shared = shared_traces_dir()
    if shared is None:
        raise SystemExit("needs ../shared/traces")
    chosen = []
    for family, n in (("fcc", args.fcc), ("norway-hsdpa", args.norway)):
        files = sorted(p for p in (shared / family).iterdir() if p.is_file())
        traces = load_traces(shared / family)
        _, test = split(traces, 0.3, 0)
        by_name = {f.name: f for f in files}
        chosen += [(family, by_name[t.name]) for t in test[:n]]
    params = json.loads(args.params) if args.params else {}
    rows = []
    slowdown = args.slowdown
    machine = None
    if slowdown == "auto":  # measured once, on the idle machine before any run, so every trace runs at the same K
        from agents.deploy import DeviceController
        from agents.live.run import machine_slowdown
        from perception import DEFAULT_PROFILE, FrameProfile

        machine = machine_slowdown(DeviceController.from_bundle(args.bundle), FrameProfile.load(DEFAULT_PROFILE),
                                   repeats=40, batches=15, pause_s=1.0)
        slowdown = machine["slowdown"]
        print(f"--slowdown auto: the int8 student takes {machine['student_ms_here']:.2f} ms here and "
              f"{machine['student_ms_profile']:.2f} ms on the profile's machine (15 medians over 20 s ranged "
              f"{machine['student_ms_range'][0]:.2f} to {machine['student_ms_range'][1]:.2f} ms): time dilation "
              f"{slowdown:.2f} for every run", flush=True)
    t_start = time.time()
    with ServerProcess(cache_dir=args.cache_dir) as server:
        server.wait_ready()
        for family, path in chosen:
            out = args.out / path.name
            r = run_live(LiveConfig(bundle=args.bundle, trace=path, out=out, scenes=args.scenes,
                                    seconds=args.seconds, start_s=args.start_s, server=server.url,
                                    policy=args.policy, params=params, force=True, slowdown=slowdown),
                         log=lambda m: print(m, flush=True))
            live, sim = r["live"], r["sim"]
            row = {"family": family, "trace": path.name, "frames": r["frames"], "fps_achieved": r["fps_achieved"],
                   "live_accuracy": live["accuracy"], "sim_accuracy": sim["accuracy"],
                   "live_mb_per_frame": live["mb_per_frame"], "sim_mb_per_frame": sim["mb_per_frame"],
                   "live_latency_p50": live["latency_ms"]["p50"], "sim_latency_p50": sim["latency_ms"]["p50"],
                   "live_miss_rate": live["miss_rate"], "sim_miss_rate": sim["miss_rate"],
                   "action_agreement": r["action_agreement"], "faults": r["faults"],
                   "latency_error_p50": abs(live["latency_ms"]["p50"] - sim["latency_ms"]["p50"])
                   / sim["latency_ms"]["p50"],
                   "device_share_p50": r["device"]["share_p50"], "slowdown": r["slowdown"], "machine": machine,
                   "server_ms_p50": float(np.median([x["server_ms"] for x in r["records"] if "server_ms" in x]
                                                    or [np.nan])),
                   "answer_timing": r["answer_timing"],
                   "decide_ms_p50": r["device"]["decide_ms_p50"], "device_ms_p50": r["device"]["ms_p50"],
                   "env_decision_ms": r["student_ms"], "env_request_ms": r["request_ms"],
                   "divergence": {"frames_any": r["observation_divergence"]["frames_any"],
                                  "top": dict(list(r["observation_divergence"]["fields"].items())[:5])}}
            rows.append(row)
            print(json.dumps(row), flush=True)
    acc_gap = [r["live_accuracy"] - r["sim_accuracy"] for r in rows]
    lines = [f"policy {args.policy}, {args.seconds:g} s per trace from {args.start_s:g} s, slowdown "
             + ", ".join(f"{r['slowdown']:.2f}" for r in rows),
             "", "| trace | live acc | sim acc | live MB/f | sim MB/f | live p50 ms | sim p50 ms | agreement | "
             "server ms p50 | device share | faults |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['family']}/{r['trace']} | {r['live_accuracy']:.3f} | {r['sim_accuracy']:.3f} | "
                     f"{r['live_mb_per_frame']:.4f} | {r['sim_mb_per_frame']:.4f} | {r['live_latency_p50']:.1f} | "
                     f"{r['sim_latency_p50']:.1f} | {r['action_agreement']:.3f} | {r['server_ms_p50']:.1f} | "
                     f"{r['device_share_p50']:.0%} | {r['faults'] or '-'} |")
    lines += ["", f"mean live - sim accuracy {np.mean(acc_gap):+.3f}; mean agreement "
              f"{np.mean([r['action_agreement'] for r in rows]):.3f}; wall {time.time() - t_start:.0f} s"]
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "parity.md").write_text(table + "\n")
    write_json(args.out / "parity.json", {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())

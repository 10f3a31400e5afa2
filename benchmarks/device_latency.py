"""Per-frame device time of the deployed controller on one CPU core: student, features, policy, against the frame period.

Runs ``agents.deploy.DeviceController`` from a device bundle on frames of the profile's own scenes (re-rendered
from ../shared's photos; without them, smooth synthetic frames), with ONNX Runtime on one thread and the process
pinned to one core. Per frame: the int8 student (preprocessing and network), the features (calibrated top-k,
embedding, distilled head, the JPEG at every remote resolution, the observation; the JPEGs are also reported
alone), and the policy. Median and p99 against the frame period at the bundle's frame rate; goal (issue #21):
the whole frame in <= 1/3 of the period. The minimum is printed too: on a shared, loaded machine it is the best
estimate of the uncontended cost (the JSON records the load average).

    python benchmarks/device_latency.py --run RUN_DIR [--out PATH] [--scenes 4] [--repeats 3]
    python benchmarks/device_latency.py --bundle BUNDLE_DIR
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_json  # noqa: E402


def _frames(bundle, n_scenes: int) -> tuple[list[np.ndarray], str]:
    """Frames of the profile's first test-side scenes re-rendered from the photos, else synthetic frames."""
    from perception import FrameProfile, load_labelled_images, shared_images_dir
    from perception.build import BuildConfig, photo_scenes

    profile = FrameProfile.load(bundle.manifest["source"]["profile"])
    images = shared_images_dir()
    if images is not None and images.is_dir() and "build" in profile.meta:
        sources = photo_scenes(load_labelled_images(images), BuildConfig.from_json(profile.meta["build"]))
        _, test_ids = profile.split_ids(0.3, 0)
        frames = [np.asarray(f) for s in test_ids[:n_scenes] for f in sources[int(s)].frames()]
        return frames, f"{n_scenes} test-side scenes of the profile, re-rendered from {images}"
    w, h = bundle.manifest["frame"]["capture"]
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    frames = [np.clip(np.stack([xx * 255 / w, yy * 255 / h, np.full((h, w), 128.0)], -1) + rng.normal(0, 2, (h, w, 3))
                      + 40 * np.sin((xx + 5 * i) / 17.0)[..., None], 0, 255).astype(np.uint8) for i in range(100)]
    return frames, "synthetic gradient frames (../shared photos not found)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", type=Path, help="training run folder (its bundle is written to a temporary folder)")
    src.add_argument("--bundle", type=Path, help="device bundle folder (train_agent.py export RUN --bundle DIR)")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/device_latency.json"))
    parser.add_argument("--scenes", type=int, default=4, help="scenes of frames to run (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="passes over the frames (default: %(default)s)")
    args = parser.parse_args()

    from agents.deploy import DeviceController, load_bundle, write_bundle

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})  # one core, as a phone's big core
    with tempfile.TemporaryDirectory() as tmp:
        bundle_dir = args.bundle if args.bundle is not None else write_bundle(args.run, Path(tmp) / "bundle")
        bundle = load_bundle(bundle_dir)
        frames, origin = _frames(bundle, args.scenes)
        ctl = DeviceController(bundle, threads=1)
        period_s = 1.0 / ctl.fps
        parts = {"student": [], "features": [], "of which JPEGs": [], "policy": [], "total": []}
        for rep in range(args.repeats + 1):  # the first pass warms up
            ctl.reset(0.0)
            for n, frame in enumerate(frames):
                t = n * period_s
                p = ctl.perceive(frame)
                d = ctl.decide(p, t)
                if d.ticket is not None:  # a fast link, so uploads and answers keep the state realistic
                    ctl.upload_finished(d.ticket, d.decide_s + 0.02)
                    ctl.answer(d.ticket, int(p.topk_class[0]), 0.9, d.decide_s + 0.06)
                if rep:
                    s = d.seconds
                    for k, v in (("student", s["student"]), ("features", s["features"]),
                                 ("of which JPEGs", p.seconds["jpeg"]), ("policy", s["policy"]),
                                 ("total", s["student"] + s["features"] + s["policy"])):
                        parts[k].append(v * 1000)
        policy = ctl.policy.describe()
    rows = [(k, float(np.median(v)), float(np.percentile(v, 99)), float(np.min(v))) for k, v in parts.items()]
    goal = period_s * 1000 / 3
    print(f"device controller, {len(parts['total'])} frames ({origin}), capture {ctl.capture[0]}x{ctl.capture[1]}, "
          f"1 core, ONNX Runtime 1 thread; policy {policy.get('name')}")
    print(f"{'part':<18} {'median ms':>10} {'p99 ms':>10} {'min ms':>8} {'median / period':>16}")
    for k, med, p99, low in rows:
        print(f"{k:<18} {med:>10.2f} {p99:>10.2f} {low:>8.2f} {med / (period_s * 1000):>16.1%}")
    total_med, total_p99 = rows[-1][1], rows[-1][2]
    print(f"frame period {period_s * 1000:.1f} ms at {ctl.fps:g} fps; goal <= 1/3 of it ({goal:.1f} ms): median "
          f"{'meets' if total_med <= goal else 'misses'} it, p99 {'meets' if total_p99 <= goal else 'misses'} it")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    write_json(args.out, {"benchmark": "device_latency", "frames": len(parts["total"]), "frame_source": origin,
                          "fps": ctl.fps, "period_ms": period_s * 1000, "goal_ms": goal, "policy": policy,
                          "capture": list(ctl.capture), "threads": 1, "load_average_1min": load,
                          "results": [{"part": k, "median_ms": m, "p99_ms": p, "min_ms": lo} for k, m, p, lo in rows],
                          "meets_goal": {"median": total_med <= goal, "p99": total_p99 <= goal},
                          "bundle": str(args.bundle) if args.bundle else f"written from run {args.run}"})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

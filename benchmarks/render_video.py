"""How fast ``OffloadEnv(render_mode="rgb_array")`` draws, and what recording an episode with RecordVideo costs.

Plays one episode (300 frames by default) of cachenet (its untuned default parameters) on the default inputs'
held-out traces and scenes, inside ``gymnasium.wrappers.RecordVideo``, and reports: milliseconds per ``render()``
(mean, median, p95, max: the max is a frame whose y range grew, so the static background was redrawn), the
episode's wall time with rendering and the video encode, the .mp4's size, and the env's steps/s with and without
``render_mode`` (rendering adds nothing to ``step`` but one record per frame). ``--still PNG`` also writes the
image after ``--still-frame`` frames of the same episode.

    python benchmarks/render_video.py [--out PATH] [--video-dir DIR] [--still PNG] [--still-frame N] [--seed S]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(Path(__file__).resolve().parent))
from common import rate, write_json  # noqa: E402

import envs  # noqa: E402
from agents.policies import CacheNetPolicy  # noqa: E402
from offload_common.files import check_output_file  # noqa: E402


class _TimedRender(gym.Wrapper):
    """Times every ``render()`` of the env it wraps (RecordVideo calls it after reset and after each step)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.seconds: list[float] = []
        self.cpu_seconds: list[float] = []

    def render(self):
        start, cpu = time.perf_counter(), time.process_time()
        frame = self.env.render()
        self.seconds.append(time.perf_counter() - start)
        self.cpu_seconds.append(time.process_time() - cpu)
        return frame


def _step_rate(render_mode: str | None, config: envs.EnvConfig, seconds: float) -> float:
    env = envs.OffloadEnv(config=config, render_mode=render_mode)
    actions = np.random.default_rng(0).integers(0, env.action_space.n, 4096).tolist()
    env.reset(seed=0)

    def run() -> int:
        for a in actions:
            _, _, _, truncated, _ = env.step(a)
            if truncated:
                env.reset()
        return len(actions)

    return rate(run, seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/benchmarks/render_video.json", help="JSON result (default: %(default)s)")
    parser.add_argument("--video-dir", default=None, help="folder for the .mp4 (default: a temporary folder)")
    parser.add_argument("--still", default=None, help="also write the image after --still-frame frames as PNG")
    parser.add_argument("--still-frame", type=int, default=200, help="frames before the still (default: 200)")
    parser.add_argument("--seed", type=int, default=0, help="episode seed (default: 0)")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per steps/s measurement (default: 2)")
    args = parser.parse_args(argv)
    out = check_output_file(args.out, "--out")
    still = check_output_file(args.still, "--still") if args.still else None
    config = envs.EnvConfig(trace_split="test", profile_split="test")
    if not 1 <= args.still_frame <= config.episode_frames:
        parser.error(f"--still-frame must be in [1, {config.episode_frames}], got {args.still_frame}")

    with tempfile.TemporaryDirectory(prefix="render-video-") as tmp:
        video_dir = Path(args.video_dir or Path(tmp) / "video")
        base = envs.OffloadEnv(config=config, render_mode="rgb_array")
        timed = _TimedRender(base)
        env = gym.wrappers.RecordVideo(timed, str(video_dir), episode_trigger=lambda _: True, name_prefix="episode")
        policy = CacheNetPolicy()
        policy.attach(base)
        start = time.perf_counter()
        obs, _ = env.reset(seed=args.seed)
        frames = 0
        truncated = False
        while not truncated:
            obs, _, _, truncated, _ = env.step(int(policy.act(obs[None])[0]))
            frames += 1
            if still is not None and frames == args.still_frame:
                from PIL import Image

                Image.fromarray(base.render()).save(still)
        env.close()  # writes the video
        wall = time.perf_counter() - start
        videos = sorted(video_dir.glob("episode-*.mp4"))
        video_bytes = videos[-1].stat().st_size if videos else 0

    ms, cpu_ms = 1000 * np.array(timed.seconds), 1000 * np.array(timed.cpu_seconds)
    summary = lambda x: {"mean": round(float(x.mean()), 2), "p50": round(float(np.median(x)), 2),
                         "p95": round(float(np.percentile(x, 95)), 2), "max": round(float(x.max()), 2)}
    result = {"frames": frames, "renders": len(ms), "image_shape": list(base.render().shape),
              "render_ms": summary(ms), "render_cpu_ms": summary(cpu_ms),
              "episode_with_video_s": round(wall, 2), "video_bytes": video_bytes,
              "steps_per_s": {"render_mode=None": round(_step_rate(None, config, args.seconds)),
                              "render_mode='rgb_array' (no render calls)":
                                  round(_step_rate("rgb_array", config, args.seconds))}}
    print(f"{frames} frames, {len(ms)} renders of {result['image_shape']}")
    for key, what in (("render_ms", "wall"), ("render_cpu_ms", "CPU")):
        r = result[key]
        print(f"render {what} ms: mean {r['mean']}, p50 {r['p50']}, p95 {r['p95']}, max {r['max']}")
    print(f"episode with RecordVideo (render + encode): {wall:.1f} s, video {video_bytes / 1e3:.0f} kB")
    for name, value in result["steps_per_s"].items():
        print(f"steps/s with {name}: {value:,}")
    write_json(out, {"benchmark": "render_video", "command": " ".join(["python", *sys.argv]), **result})
    print(f"wrote {out}" + (f" and {still}" if still else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

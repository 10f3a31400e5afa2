"""Speed of the live pipeline's parts: the edge server, the pacer, the device loop.

    python benchmarks/live.py --bundle BUNDLE [--seconds 3] [--out runs/benchmarks/live.json]

* server frames/s per remote action (offload@<px>, teacher) with 1 and 4 concurrent clients (HTTP on loopback,
  no pacing; the ONNX exports are cached);
* pacer timing error: real minus intended release time of each packet (p50, p99), for 2 kB uploads every
  100 ms on a 1.3 Mbit/s cooked trace for ``--seconds`` x 2;
* the device loop (int8 student, features, JPEGs, cachenet's decision) per frame on re-rendered profile frames,
  median and p99, as a share of the frame period.

Prints a table and writes JSON. Numbers depend on the machine and on its load (stated in the JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]  # this checkout first
from common import write_json  # noqa: E402


async def _clients(url: str, action: str, jpeg: bytes, n_clients: int, seconds: float) -> tuple[int, float]:
    import aiohttp

    done = 0
    async with aiohttp.ClientSession() as session:
        async def one() -> None:
            nonlocal done
            async with session.post(f"{url}/infer", params={"action": action}, data=jpeg,
                                    headers={"Content-Type": "image/jpeg"}) as resp:
                await resp.read()
                assert resp.status == 200
            done += 1

        await one()  # warm-up
        done = 0
        t0 = time.perf_counter()

        async def loop() -> None:
            while time.perf_counter() - t0 < seconds:
                await one()

        await asyncio.gather(*[loop() for _ in range(n_clients)])
        return done, time.perf_counter() - t0


def server_rates(frame, seconds: float, cache_dir: Path | None) -> dict[str, dict[str, float]]:
    from PIL import Image

    from agents.live import ServerProcess
    from perception import models as pm

    img = Image.fromarray(frame)
    out: dict[str, dict[str, float]] = {}
    with ServerProcess(cache_dir=cache_dir) as srv:
        health = srv.wait_ready()
        for action in health["actions"]:
            jpeg = pm.jpeg_bytes(img if action == "teacher" else pm.resize_crop(img, int(action.split("@")[1])), 85)
            out[action] = {}
            for n in (1, 4):
                done, elapsed = asyncio.run(_clients(srv.url, action, jpeg, n, seconds))
                out[action][f"clients_{n}"] = done / elapsed
    return out


def pacer_error(seconds: float) -> dict[str, float]:
    from agents.live import PacerProcess, Route
    from bandwidth_traces import Trace, write_cooked

    async def run(path: Path) -> dict:
        async def sink(reader, writer):
            try:
                while await reader.read(65536):
                    pass
            except (asyncio.CancelledError, ConnectionError):
                pass

        server = await asyncio.start_server(sink, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        with PacerProcess(path, 0.0, [Route("edge", "127.0.0.1", port, 0.03)]) as pacer:
            _, writer = await asyncio.open_connection("127.0.0.1", pacer.ports["edge"])
            t0 = time.monotonic()
            pacer.start_clock(t0)
            k = 0
            while time.monotonic() - t0 < seconds * 2:
                k += 1
                await asyncio.sleep(max(0.0, t0 + 0.1 * k - time.monotonic()))
                writer.write(b"x" * 2000)
                await writer.drain()
            await asyncio.sleep(0.5)
            stats = pacer.stats()
            writer.close()
        server.close()
        return stats

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "flat-1.3"
        write_cooked(Trace("flat", "bench", np.array([0.0]), np.array([1.3]), 600.0), path)
        stats = asyncio.run(run(path))
    return {k: v for k, v in stats.items() if k.startswith("release") or k == "bytes"}


def device_loop(bundle: Path, frames: list[np.ndarray], fps: float) -> dict[str, float]:
    from agents.deploy import DeviceController
    from agents.policies import CacheNetPolicy

    ctl = DeviceController.from_bundle(bundle, policy=CacheNetPolicy())
    ctl.reset(0.0)
    times = []
    for n, f in enumerate(frames):
        t0 = time.perf_counter()
        ctl.step(f, n / fps)
        times.append(time.perf_counter() - t0)
    ms = np.array(times[3:]) * 1000.0
    period = 1000.0 / fps
    return {"frames": int(ms.size), "ms_p50": float(np.median(ms)), "ms_p99": float(np.percentile(ms, 99)),
            "share_p50": float(np.median(ms) / period), "share_p99": float(np.percentile(ms, 99) / period)}


def main() -> int:
    root = Path(__file__).resolve().parents[1]
    from agents.live.run import profile_episode
    from perception import DEFAULT_PROFILE, FrameProfile

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--seconds", type=float, default=3.0, help="per measurement (default 3)")
    p.add_argument("--cache-dir", type=Path, default=None, help="the server's ONNX cache")
    p.add_argument("--out", type=Path, default=root / "runs" / "benchmarks" / "live.json")
    args = p.parse_args()
    profile = FrameProfile.load(DEFAULT_PROFILE)
    fps = float(profile.meta["fps"])
    episode = profile_episode(profile, 2, fps, None, tuple(profile.meta["capture"]))
    load = os.getloadavg()[0]
    result = {"load_average_1min": load,
              "server_frames_per_s": server_rates(episode.frames[0], args.seconds, args.cache_dir),
              "pacer": pacer_error(args.seconds),
              "device_loop": device_loop(args.bundle, episode.frames, fps)}
    result["load_average_1min_after"] = os.getloadavg()[0]
    lines = [f"load average {load:.1f} (2-core machine shared with other jobs)", "",
             "| server action | frames/s, 1 client | frames/s, 4 clients |", "|---|---:|---:|"]
    for action, r in result["server_frames_per_s"].items():
        lines.append(f"| {action} | {r['clients_1']:.1f} | {r['clients_4']:.1f} |")
    pc, dv = result["pacer"], result["device_loop"]
    lines += ["", f"pacer release error (real - intended): p50 {pc['release_error_ms_p50']:.3f} ms, p99 "
              f"{pc['release_error_ms_p99']:.3f} ms over {pc['releases']} packets",
              f"device loop per frame: median {dv['ms_p50']:.1f} ms, p99 {dv['ms_p99']:.1f} ms = "
              f"{dv['share_p50']:.0%} / {dv['share_p99']:.0%} of the {1000 / fps:.1f} ms frame period"]
    print("\n".join(lines))
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

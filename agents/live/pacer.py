"""A trace-paced uplink on loopback, no root needed: a TCP relay whose client-to-server bytes cross only as fast
as a bandwidth trace allows, in real time.

No package on PyPI replays a bandwidth trace (only fixed-rate throttles exist; Mahimahi needs root and a network
namespace), so this is the project's own, kept small. The model is exactly the env's (``envs/core.py``): one FIFO
uplink; bytes that arrive at trace time ``a`` start at ``max(a, link_free)`` and an upload of ``n`` bytes that
starts at ``s`` is through at ``s + Trace.transfer_time(s, n)`` (the compiled kernel's ``_transfer_s`` is that
function, ``tests/test_env_api.py``), wrapping around the trace's end. The bytes go out as 1,500-byte packets, each
released when the trace has delivered it (the last one of a chunk may be shorter), then delayed by half the route's
round trip; answers (server to device) are not rate-limited (the env models no downlink) and are delayed by the
other half, so an answer arrives ``upload + rtt + server time`` after its upload starts, as in the env.

Time dilation (``slowdown`` > 1, ``Uplink``): the whole emulated world (link, round trips) runs K times slower than
the wall clock, so a loaded machine can emulate one K times faster; the live run dilates its camera the same way.

Routes: one relay listens per route (e.g. ``edge`` to the server with the edge RTT, ``cloud`` to the teacher with
the cloud RTT); all routes share the one uplink, as the device's radio is one.

Timing: packets are written by one dispatcher in time order; it waits on the event loop until ``spin_s`` before a
release and busy-waits the rest (asyncio's timers are ~1 ms coarse: a 2 kB upload on a 1.3 Mbit/s link
takes 12 ms, so 1% is 0.12 ms). Run it in its own process (``python -m agents.live.pacer``, which ``PacerProcess`` starts), so
neither the device loop nor the GIL delays a release.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bandwidth_traces import Trace

PACKET_BYTES = 1500
READ_BYTES = 64 * 1024


class Uplink:
    """The env's FIFO uplink on a trace, in real time: trace time = ``start_s + (monotonic - t0) / slowdown``.

    ``slowdown`` > 1 dilates time (Gupta et al., "To infinity and beyond: time-warped network emulation", NSDI
    2006): the emulated link runs that many times slower than the wall clock, so that a machine too slow or too
    loaded for real time can emulate one ``slowdown`` times faster; 1 is real time.
    """

    def __init__(self, trace: Trace, start_s: float, t0: float, packet_bytes: int = PACKET_BYTES,
                 slowdown: float = 1.0):
        if packet_bytes < 1:
            raise ValueError(f"packet_bytes={packet_bytes}: expected >= 1")
        if not np.isfinite(start_s):
            raise ValueError(f"start_s={start_s!r}: expected a finite offset into the trace in seconds")
        self.trace = trace
        self.start_s = float(start_s)
        self.t0 = float(t0)
        if not (np.isfinite(slowdown) and slowdown >= 1):
            raise ValueError(f"slowdown={slowdown!r}: expected a number >= 1 (1: real time)")
        self.slowdown = float(slowdown)
        self.packet_bytes = int(packet_bytes)
        self.link_free_s = -np.inf  # trace time when the last accepted byte is through
        self.bytes_in = 0

    def trace_time(self, mono: float) -> float:
        return self.start_s + (mono - self.t0) / self.slowdown

    def schedule(self, nbytes: int, arrival_mono: float) -> tuple[list[float], list[int]]:
        """Monotonic release times and sizes of the packets of ``nbytes`` that arrived at ``arrival_mono``."""
        a = self.trace_time(arrival_mono)
        start = max(a, self.link_free_s)
        ends = np.minimum(np.arange(1, -(-nbytes // self.packet_bytes) + 1) * self.packet_bytes, nbytes)
        done = start + np.asarray(self.trace.transfer_time(start, ends.astype(np.float64)), np.float64)
        self.link_free_s = float(done[-1])
        self.bytes_in += nbytes
        sizes = np.diff(np.r_[0, ends]).astype(int).tolist()
        return ((done - self.start_s) * self.slowdown + self.t0).tolist(), sizes


@dataclass(frozen=True)
class Route:
    """One relay: the device connects to ``listen`` and reaches ``upstream`` (host, port) ``rtt_s`` away."""

    name: str
    upstream_host: str
    upstream_port: int
    rtt_s: float

    @classmethod
    def parse(cls, text: str) -> Route:
        """``NAME=HOST:PORT:RTT_MS`` (the ``--route`` flag)."""
        name, eq, rest = text.partition("=")
        parts = rest.rsplit(":", 2)
        try:
            if not (name and eq and len(parts) == 3):
                raise ValueError
            host, port, rtt_ms = parts[0], int(parts[1]), float(parts[2])
            if not (0 < port < 65536 and np.isfinite(rtt_ms) and rtt_ms >= 0):
                raise ValueError
        except ValueError:
            raise ValueError(f"--route {text!r}: expected NAME=HOST:PORT:RTT_MS, e.g. edge=127.0.0.1:8700:30") from None
        return cls(name, host, port, rtt_ms / 1000.0)


class Dispatcher:
    """Runs callbacks at exact monotonic times, in time order: it waits on the event loop's timer until ``spin_s``
    before a release (asyncio rounds timeouts up to the millisecond), then busy-waits the rest (measured on a loaded
    2-core machine: median release error 0.01 ms; ``time.sleep`` for the rest: 1.3 ms, it wakes late under load)."""

    def __init__(self, spin_s: float = 0.0015, keep: int = 100_000):
        self._heap: list[tuple[float, int, Any]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self.spin_s = spin_s
        self.errors_s: list[float] = []  # actual minus intended time of each callback (bounded)
        self._keep = keep

    def at(self, when: float, fn) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), fn))
        self._wake.set()

    async def run(self) -> None:
        while True:
            if not self._heap:
                self._wake.clear()
                await self._wake.wait()
                continue
            when = self._heap[0][0]
            wait = when - time.monotonic()
            if wait > self.spin_s:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), wait - self.spin_s)
                except TimeoutError:
                    pass
                continue  # an earlier item may have arrived
            while time.monotonic() < when:
                pass
            when, _, fn = heapq.heappop(self._heap)
            now = time.monotonic()
            if len(self.errors_s) < self._keep:
                self.errors_s.append(now - when)
            fn()
            if not self._heap or self._heap[0][0] - time.monotonic() > self.spin_s:
                await asyncio.sleep(0)  # let the loop read sockets between bursts


def _half_close(writer: asyncio.StreamWriter) -> None:
    """Pass an end of stream on (the other direction stays open), or close where half-closing is impossible."""
    if writer.is_closing():
        return
    if writer.can_write_eof():
        writer.write_eof()
    else:
        writer.close()


class Pacer:
    """The relays of all routes over one ``Uplink``, on the running event loop."""

    def __init__(self, trace: Trace, start_s: float, routes: Sequence[Route], listen_host: str = "127.0.0.1",
                 spin_s: float = 0.0015, packet_bytes: int = PACKET_BYTES, slowdown: float = 1.0):
        names = [r.name for r in routes]
        if not routes or len(set(names)) != len(names):
            raise ValueError(f"routes {names}: expected at least one, with distinct names")
        self.trace, self.start_s, self.routes, self.listen_host = trace, start_s, list(routes), listen_host
        self.packet_bytes = packet_bytes
        self.slowdown = slowdown
        self.uplink: Uplink | None = None
        self.dispatcher = Dispatcher(spin_s)
        self.ports: dict[str, int] = {}
        self._servers: list[asyncio.base_events.Server] = []
        self.uploads: list[dict[str, float]] = []  # per chunk: arrival, start and finish (monotonic), bytes, route

    def start_clock(self, t0: float) -> None:
        """Trace time ``start_s`` is monotonic time ``t0`` (the device's episode start)."""
        self.uplink = Uplink(self.trace, self.start_s, t0, self.packet_bytes, self.slowdown)

    async def start(self) -> dict[str, int]:
        self._task = asyncio.ensure_future(self.dispatcher.run())
        for route in self.routes:
            server = await asyncio.start_server(lambda r, w, route=route: self._relay(route, r, w),
                                                self.listen_host, 0)
            self._servers.append(server)
            self.ports[route.name] = server.sockets[0].getsockname()[1]
        return self.ports

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        self._task.cancel()

    async def _relay(self, route: Route, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(route.upstream_host, route.upstream_port)
        except OSError:
            writer.close()  # the device sees the connection drop: as a server that does not answer
            return
        half = route.rtt_s * self.slowdown / 2
        d = self.dispatcher

        async def uplink() -> None:
            last = time.monotonic()
            while data := await reader.read(READ_BYTES):
                now = time.monotonic()
                if self.uplink is None:
                    self.start_clock(now)
                releases, sizes = self.uplink.schedule(len(data), now)
                self.uploads.append({"arrival": now, "finish": releases[-1], "bytes": len(data), "route": route.name})
                offset = 0
                for when, size in zip(releases, sizes):
                    chunk = data[offset:offset + size]
                    offset += size
                    d.at(when + half, lambda c=chunk: None if up_writer.is_closing() else up_writer.write(c))
                last = releases[-1]
            d.at(max(last, time.monotonic()) + half, lambda: _half_close(up_writer))

        async def downlink() -> None:
            while data := await up_reader.read(READ_BYTES):
                d.at(time.monotonic() + half, lambda c=data: None if writer.is_closing() else writer.write(c))
            d.at(time.monotonic() + half, lambda: _half_close(writer))

        try:
            await asyncio.gather(uplink(), downlink())
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass  # a peer went away, or the pacer is stopping: the other side sees the connection close
        finally:
            for w in (writer, up_writer):
                if not w.is_closing():
                    d.at(time.monotonic() + half, w.close)

    def stats(self) -> dict[str, Any]:
        err = np.asarray(self.dispatcher.errors_s) * 1000.0
        out = {"releases": int(err.size), "bytes": self.uplink.bytes_in if self.uplink else 0,
               "uploads": self.uploads[-1000:]}
        if err.size:
            out.update({"release_error_ms_p50": float(np.percentile(err, 50)),
                        "release_error_ms_p99": float(np.percentile(err, 99)),
                        "release_error_ms_max": float(err.max())})
        return out


async def _main_async(args: argparse.Namespace) -> int:
    from bandwidth_traces import load_traces

    traces = load_traces(args.trace)
    if len(traces) != 1:
        raise ValueError(f"--trace {args.trace}: expected one trace file, found {len(traces)} traces")
    pacer = Pacer(traces[0], args.start_s, [Route.parse(r) for r in args.route], spin_s=args.spin_ms / 1000.0,
                  slowdown=args.slowdown)
    ports = await pacer.start()
    print(json.dumps({"ports": ports, "trace": traces[0].name, "pid": os.getpid()}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    # control lines on stdin: "start T0" (the episode's monotonic origin), "stats"; EOF (the parent is gone) stops it
    while line := await reader.readline():
        cmd, _, arg = line.decode().strip().partition(" ")
        if cmd == "start":
            pacer.start_clock(float(arg))
            print(json.dumps({"started": float(arg)}), flush=True)
        elif cmd == "stats":
            print(json.dumps(pacer.stats()), flush=True)
    await pacer.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m agents.live.pacer", description=__doc__.split("\n\n")[0])
    p.add_argument("--trace", required=True, help="one trace file (cooked or Mahimahi)")
    p.add_argument("--start-s", type=float, default=0.0, help="trace offset at the clock's origin (s)")
    p.add_argument("--route", action="append", required=True, help="NAME=HOST:PORT:RTT_MS (repeatable)")
    p.add_argument("--spin-ms", type=float, default=1.5, help="busy-wait this long before each release")
    p.add_argument("--slowdown", type=float, default=1.0, help="time dilation: the link runs this many times "
                   "slower than the wall clock (default 1: real time)")
    args = p.parse_args(argv)
    try:
        return asyncio.run(_main_async(args))
    except (ValueError, FileNotFoundError) as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        return 2


class PacerProcess:
    """``python -m agents.live.pacer`` as a child process: started, its ports read, its clock started, stopped.

    The child exits when its stdin closes, so it never outlives the process that started it.
    """

    def __init__(self, trace_path: str | os.PathLike, start_s: float, routes: Sequence[Route], spin_ms: float = 1.5,
                 timeout_s: float = 30.0, slowdown: float = 1.0):
        cmd = [sys.executable, "-c", "import sys; from agents.live.pacer import main; sys.exit(main())",
               "--trace", str(trace_path), "--start-s", repr(start_s), "--spin-ms", repr(spin_ms),
               "--slowdown", repr(slowdown)]
        for r in routes:
            cmd += ["--route", f"{r.name}={r.upstream_host}:{r.upstream_port}:{r.rtt_s * 1000.0!r}"]
        root = Path(__file__).resolve().parents[2]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=root, env=env)
        info = self._read(timeout_s)
        if "error" in info:
            self.stop()
            raise ValueError(f"pacer: {info['error']}")
        self.ports: dict[str, int] = info["ports"]

    def _read(self, timeout_s: float) -> dict[str, Any]:
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout_s):
            self.stop()
            raise RuntimeError(f"the pacer did not answer within {timeout_s} s")
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            raise RuntimeError(f"the pacer exited with code {code} before answering")
        return json.loads(line)

    def start_clock(self, t0: float) -> None:
        self.proc.stdin.write(f"start {t0!r}\n")
        self.proc.stdin.flush()
        self._read(10.0)

    def stats(self) -> dict[str, Any]:
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        return self._read(10.0)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(5.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> PacerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())

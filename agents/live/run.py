"""``train_agent.py live``: a deployed policy on a real pipeline in real time, beside the simulator on the same episode.

Live: frames (re-rendered profile scenes, or decoded video) are captured at the bundle's frame rate on the wall
clock; each goes through the device controller (``agents.deploy.DeviceController``: int8 student, features, answer
cache, uplink bookkeeping, policy); a remote decision's JPEG is POSTed to the edge server (``agents.live.server``,
a real process) through the trace-paced uplink (``agents.live.pacer``, a real relay on loopback, the edge or the
cloud round trip); each answer is applied when it really arrives: by its frame's deadline it is the frame's answer,
later it only enters the cache (as in the env). The device learns when an upload was through from its answer
(arrival minus the round trip minus the server's reported time): it has no view of the link itself.

Sim: the env (``envs.OffloadEnv``) replays exactly that episode (the same frames as profile rows, the same trace and
start offset, the same policy, timing constants from the bundle's ``ObservationSpec``).

Time dilation (``slowdown`` K > 1): camera, link, round trips and deadlines run K times slower than the wall clock,
and every time the device measures (its loop, the server's reported time) counts 1/K: the run emulates this
machine K times faster (for a CPU too loaded for real time); every time in the report is emulated time.

Faults (server not running, killed mid-run, slow, answering garbage): the upload's frame keeps its local answer, the
fault is counted by kind, and the run goes on at its frame rate; requests time out after ``request_timeout_s``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .pacer import PacerProcess, Route
from .server import ServerProcess, parse_answer

OUTPUTS = ("live.json", "live.md", "timeline.png")
POLICIES = ("bundle", "cachenet", "cbo-cond", "local")


@dataclass(frozen=True)
class LiveConfig:
    """One live run (``train_agent.py live``'s flags)."""

    bundle: Path
    trace: Path
    out: Path
    scenes: int | None = None
    videos: tuple[Path, ...] = ()
    start_s: float = 0.0
    seconds: float | None = None
    server: str | None = None  # URL of a running server; None: start one
    policy: str = "bundle"
    params: dict[str, Any] = field(default_factory=dict)
    profile: Path | None = None  # the profile whose scenes --scenes re-renders (default: the committed one)
    cache_dir: Path | None = None  # the started server's ONNX cache
    force: bool = False
    request_timeout_s: float = 5.0  # in emulated seconds
    threads: int = 1
    # time dilation: the camera, link and round trips run K times slower than the wall clock; "auto": K is this
    # machine's int8 student latency over the profile's (``machine_slowdown``), emulating the profile's machine
    slowdown: float | str = 1.0
    # a heuristic deployed (and simulated) with measured timing instead of the bundle's: server and teacher compute
    # times x compute_scale, the device's time before a decision student_ms (None: the bundle's)
    compute_scale: float = 1.0
    student_ms: float | None = None


# ---- inputs, checked before anything starts ---------------------------------------------------------------------
def check_inputs(cfg: LiveConfig):
    """Bundle, trace, frames source and output folder, each with an error naming the flag; returns the bundle and
    the trace."""
    from agents.deploy import load_bundle
    from bandwidth_traces import load_traces
    from offload_common.files import MANIFEST, check_output_dir

    out = check_output_dir(cfg.out, "--out")
    if (out / "live.json").exists() and not cfg.force:
        raise ValueError(f"--out {out} holds a live run (live.json); pass --force to replace it")
    if out.exists() and not all(p.name in (*OUTPUTS, MANIFEST) for p in out.iterdir()):
        raise ValueError(f"--out {out}: folder holds other files than a live run's ({', '.join(OUTPUTS)}); "
                         "give a new or empty folder")
    if (cfg.scenes is None) == (not cfg.videos):
        raise ValueError("give either --scenes N (re-rendered profile scenes) or --video FILE... (decoded video)")
    if cfg.scenes is not None and cfg.scenes < 1:
        raise ValueError(f"--scenes {cfg.scenes}: expected an integer >= 1")
    for v in cfg.videos:
        if not Path(v).is_file():
            raise FileNotFoundError(f"--video {v}: no such file")
    if not math.isfinite(cfg.start_s) or cfg.start_s < 0:
        raise ValueError(f"--start-s {cfg.start_s}: expected a finite offset >= 0 into the trace, in seconds")
    if cfg.seconds is not None and not (math.isfinite(cfg.seconds) and cfg.seconds > 0):
        raise ValueError(f"--seconds {cfg.seconds}: expected a duration > 0")
    if cfg.slowdown != "auto" and not (isinstance(cfg.slowdown, (int, float)) and math.isfinite(cfg.slowdown)
                                       and cfg.slowdown >= 1):
        raise ValueError(f"--slowdown {cfg.slowdown}: expected 'auto' or a number >= 1 (1: real time)")
    if not (math.isfinite(cfg.compute_scale) and cfg.compute_scale > 0):
        raise ValueError(f"--compute-scale {cfg.compute_scale}: expected a number > 0")
    if cfg.student_ms is not None and not (math.isfinite(cfg.student_ms) and cfg.student_ms >= 0):
        raise ValueError(f"--student-ms {cfg.student_ms}: expected a number >= 0")
    if cfg.policy == "bundle" and (cfg.compute_scale != 1.0 or cfg.student_ms is not None):
        raise ValueError("--compute-scale / --student-ms retime a heuristic; the bundle's policy.onnx was trained "
                         "with the bundle's timing (export a run trained with that timing instead)")
    if cfg.policy not in POLICIES:
        raise ValueError(f"--policy {cfg.policy!r}: expected one of {', '.join(POLICIES)}")
    if cfg.server is not None and not cfg.server.startswith("http://"):
        raise ValueError(f"--server {cfg.server!r}: expected a URL http://HOST:PORT")
    if not Path(cfg.trace).is_file():
        raise FileNotFoundError(f"--trace {cfg.trace}: no such file (expected one cooked or Mahimahi trace file)")
    traces = load_traces(cfg.trace)
    if len(traces) != 1:
        raise ValueError(f"--trace {cfg.trace}: expected one trace file, found {len(traces)} traces")
    return load_bundle(cfg.bundle), traces[0]


def sim_config(bundle, compute_scale: float = 1.0, student_ms: float | None = None):
    """The ``EnvConfig`` the bundle's policy was trained with (the manifest's ``env_config``), replaying every scene
    of a profile on any trace; a heuristic may be deployed with measured timing instead: its server and teacher
    compute x ``compute_scale``, its whole device time before a decision ``student_ms``."""
    from envs import EnvConfig

    if "env_config" not in bundle.manifest:
        raise ValueError(f"{bundle.root / 'manifest.json'} has no env_config (written before the env's v2 timing): "
                         "re-export it with `train_agent.py export RUN --bundle DIR`")
    cfg = EnvConfig.from_dict(bundle.manifest["env_config"])
    changes: dict[str, Any] = {"profile_split": "all", "trace_split": "all", "skip_downlink": False,
                               "trace_families": None}
    if compute_scale != 1.0:
        changes["compute_scale"] = cfg.compute_scale * compute_scale
    if student_ms is not None:
        changes.update(student_ms=student_ms, device_ms=0.0)
    return cfg.replace(**changes)


def retimed(bundle, profile, config):
    """The bundle with the timing of ``config`` (``sim_config``): its observation spec and device times as the env
    derives them (``envs.observation_spec``, ``envs.decision_seconds``), so the controller and the simulator agree."""
    from dataclasses import replace

    from envs import decision_seconds, observation_spec

    device = {**bundle.manifest["device"], "student_s": decision_seconds(profile, config),
              "request_s": config.request_ms / 1000.0}
    return replace(bundle, spec=observation_spec(profile, config),
                   manifest={**bundle.manifest, "device": device, "env_config": config.to_dict()})


def machine_slowdown(ctl, profile, repeats: int = 40, batches: int = 1, pause_s: float = 0.0) -> dict[str, Any]:
    """How many times slower this machine runs the device's int8 student than the machine the profile's latencies
    were measured on (median batch-1 ``session.run`` here, as ``perception`` measured it there); at least 1. Run
    with that time dilation, every time measured here (device loop, server) counts as on the profile's machine.

    A shared virtual machine's speed drifts by tens of percent within seconds, so ``batches`` medians of
    ``repeats`` runs, ``pause_s`` apart, give the median of their medians (and their range, ``student_ms_range``)."""
    lat = profile.meta.get("latency_ms", {})
    key = next((k for k in lat if k.startswith("student_int8@")), None)
    if key is None or lat[key] <= 0:
        raise ValueError("--slowdown auto: the profile records no int8 student latency to compare this machine with")
    x = np.random.default_rng(0).standard_normal((1, 3, ctl.student_res, ctl.student_res)).astype(np.float32)
    inp = ctl.student.get_inputs()[0].name
    medians = []
    for b in range(batches):
        if b:
            time.sleep(pause_s)
        times = []
        for n in range(repeats + 5):
            t0 = time.perf_counter()
            ctl.student.run(None, {inp: x})
            if n >= 5:
                times.append(time.perf_counter() - t0)
        medians.append(float(np.median(times) * 1000.0))
    here = float(np.median(medians))
    return {"slowdown": max(1.0, here / float(lat[key])), "student_ms_here": here, "student_ms_profile": float(lat[key]),
            "student_ms_range": [min(medians), max(medians)]}


def make_policy(name: str, params: dict[str, Any]):
    """A fresh instance of the policy to deploy (``bundle``: None, the controller loads the bundle's policy.onnx)."""
    from agents.policies import CacheNetPolicy, CBOCondPolicy, ConstantPolicy

    if name == "bundle":
        if params:
            raise ValueError("--params: the bundle's policy.onnx takes no parameters")
        return None
    if name == "local":
        return ConstantPolicy(0, "local")
    cls = {"cachenet": CacheNetPolicy, "cbo-cond": CBOCondPolicy}[name]
    try:
        return cls(**{k: v for k, v in params.items() if k != "name"})
    except TypeError as exc:
        raise ValueError(f"--params for {name}: {exc}") from None


@dataclass
class Episode:
    """The frames of one run: RGB uint8 arrays, labels, and (for profile scenes) their profile rows and scenes."""

    frames: list[np.ndarray]
    labels: np.ndarray
    rows: np.ndarray | None
    scenes: list[int]
    fps: float
    source: str


def profile_episode(profile, n_scenes: int, fps: float, seconds: float | None, capture: tuple[int, int]) -> Episode:
    """The first ``n_scenes`` test-side scenes of a photo profile, re-rendered exactly as its build rendered them
    (same photos, same seeds), cut to ``seconds``."""
    from PIL import Image

    from perception import SceneSpec, load_labelled_images, render_scene, shared_images_dir

    ds = profile.meta.get("dataset", {})
    images = Path(ds["images_dir"]) if ds.get("images_dir") and Path(ds["images_dir"]).is_dir() else shared_images_dir()
    if images is None or ds.get("label_source") != "dataset":
        raise ValueError("--scenes re-renders a photo profile's scenes from its photos: the profile's images folder "
                         f"({ds.get('images_dir')}) is not here and ../shared/datasets/imagenet-sample is absent")
    build = profile.meta["build"]
    spec = SceneSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in build["scene"].items()})
    if tuple(spec.capture) != tuple(capture) or spec.fps != fps:
        raise ValueError(f"the profile renders {spec.capture} at {spec.fps} fps but the bundle expects {capture} at "
                         f"{fps} fps: not the bundle's profile")
    _, test = profile.split_ids(0.3, 0)
    if n_scenes > len(test):
        raise ValueError(f"--scenes {n_scenes}: the profile has {len(test)} test-side scenes")
    chosen = [int(s) for s in test[:n_scenes]]
    photos = load_labelled_images(images)
    limit = None if seconds is None else max(1, int(round(seconds * fps)))
    frames, rows = [], []
    for s in chosen:
        idx = np.flatnonzero(profile.scene == s)
        take = len(idx) if limit is None else min(len(idx), limit - len(frames))
        with Image.open(photos[s].path) as img:
            for k, f in enumerate(render_scene(img, spec, seed=int(build["seed"]) * 1_000_003 + s, n_frames=len(idx))):
                if k >= take:
                    break
                frames.append(np.asarray(f))
        rows += idx[:take].tolist()
        if limit is not None and len(frames) >= limit:
            break
    rows = np.array(rows)
    used = sorted(set(profile.scene[rows].tolist()), key=chosen.index)
    return Episode(frames, profile.label[rows].astype(int), rows, used, fps, f"profile scenes {used}")


# ---- the live episode ---------------------------------------------------------------------------------------------
@dataclass
class _Live:
    records: list[dict[str, Any]]
    faults: Counter
    tasks: set
    measurements: list[float]
    finished: dict[int, float]  # ticket -> upload finish estimate, reported to the controller in ticket order
    next_report: int = 0
    link_free_s: float = 0.0  # the latest upload finish estimate (FIFO: the next upload starts after it)


async def _warm_up(ctl, episode: Episode, server_url: str, timeout_s: float) -> bool:
    """Before the clock starts: the first inferences of each ONNX session (device and server) are slow, so each runs
    once here, the server's directly (not through the paced link). False if the server does not answer."""
    import aiohttp

    loop = asyncio.get_running_loop()
    p = None
    for frame in episode.frames[:3]:
        p = await loop.run_in_executor(None, ctl.perceive, frame)
    ok = True
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=max(timeout_s, 10.0))) as session:
        for name, jpeg in zip(ctl.spec.remote_names, p.jpegs):
            try:
                async with session.post(server_url + "/infer", params={"action": name}, data=jpeg,
                                        headers={"Content-Type": "image/jpeg"}) as resp:
                    await resp.read()
                    ok &= resp.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
    ctl.reset(0.0)
    return ok


async def _run_live(ctl, episode: Episode, pacer: PacerProcess, server_url: str, server_url_edge: str,
                    server_url_cloud: str, rtt_s: Sequence[float], timeout_s: float,
                    log: Callable[[str], None], slowdown: float = 1.0) -> dict[str, Any]:
    import aiohttp

    spec = ctl.spec
    request_s = float(ctl.bundle.manifest["device"].get("request_s", 0.0))
    fps = episode.fps
    n_remote = len(spec.resolutions) + 1
    state = _Live([], Counter(), set(), [], {})
    loop = asyncio.get_running_loop()
    if not await _warm_up(ctl, episode, server_url, timeout_s):
        log(f"warning: the server at {server_url} does not answer: every upload will fall back to the local answer")
    ctl.reset(0.0)
    t0 = time.monotonic() + 0.5
    pacer.start_clock(t0)

    k = slowdown

    def clock() -> float:
        """Emulated seconds since the episode's start (the wall clock divided by the slowdown)."""
        return (time.monotonic() - t0) / k

    def estimate_mbps() -> float:
        m = state.measurements[-spec.history:]
        return len(m) / sum(1.0 / max(x, 1e-6) for x in m) if m else spec.prior_mbps

    def report_finishes() -> None:
        while state.next_report in state.finished:
            ctl.upload_finished(state.next_report, state.finished.pop(state.next_report))
            state.next_report += 1

    def finish(ticket: int, decide_s: float, nbytes: int, finish_s: float | None) -> None:
        """The upload's finish time: from its answer, or (a fault) the estimate the device would have made."""
        start = max(decide_s, state.link_free_s)
        if finish_s is None:
            finish_s = start + nbytes * 8e-6 / estimate_mbps()
        finish_s = max(finish_s, start)
        state.link_free_s = finish_s
        state.measurements.append(nbytes * 8e-6 / max(finish_s - start, 1e-9))
        state.finished[ticket] = finish_s
        report_finishes()

    async def send(session: aiohttp.ClientSession, rec: dict[str, Any], d) -> None:
        r = d.action - 1
        teacher = r == n_remote - 1
        url = (server_url_cloud if teacher else server_url_edge) + "/infer"
        fault = None
        answer = None
        try:
            async with session.post(url, params={"action": d.action_name}, data=d.jpeg,
                                    headers={"Content-Type": "image/jpeg"}) as resp:
                body = await resp.read()
                arrival = clock()
                if resp.status != 200:
                    fault = f"http_{resp.status}"
                else:
                    answer = parse_answer(body, d.action_name)
        except TimeoutError:
            fault = "timeout"
        except aiohttp.ClientError:
            fault = "connection"
        except ValueError:
            fault = "garbage"
        if answer is None:
            state.faults[fault] += 1
            rec["fault"] = fault
            finish(d.ticket, d.decide_s, len(d.jpeg), None)
            return
        rec["server_ms"] = float(answer.get("server_ms", 0.0)) / k  # emulated, as every time in the report
        rec["inference_ms"] = float(answer.get("inference_ms", 0.0)) / k
        # what the device can tell: the answer's arrival minus the round trip, the server's own time and the
        # modelled per-request overhead (EnvConfig.request_ms) is when the upload was through
        finish(d.ticket, d.decide_s, len(d.jpeg), arrival - rtt_s[r] - rec["server_ms"] / 1000.0 - request_s)
        ctl.answer(d.ticket, answer["class"], answer["confidence"], arrival)
        rec["answer_ms"] = (arrival - d.capture_s) * 1000.0
        if arrival <= d.deadline_s:
            rec.update(on_time=True, answer=int(answer["class"]), latency_ms=rec["answer_ms"])

    timeout = aiohttp.ClientTimeout(total=timeout_s * k)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector,
                                     skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding")) as session:
        for n, frame in enumerate(episode.frames):
            capture = n / fps
            wait = t0 + capture * k - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            t_start = time.perf_counter()
            p = await loop.run_in_executor(None, ctl.perceive, frame)
            decide = clock()
            d = ctl.decide(p, capture, decide)
            device_s = (time.perf_counter() - t_start) / k
            rec = {"frame": n, "label": int(episode.labels[n]), "capture_ms": capture * 1000.0,
                   "decide_ms": (decide - capture) * 1000.0, "device_ms": device_s * 1000.0,
                   "start_late_ms": max(-wait, 0.0) * 1000.0 / k, "action": d.action, "action_name": d.action_name,
                   "bytes": len(d.jpeg) if d.jpeg is not None else 0, "refused": bool(d.refused),
                   "sent": d.ticket is not None, "answer": int(d.answer), "on_time": False,
                   "latency_ms": (decide - capture) * 1000.0, "answer_ms": None, "fault": None,
                   "reused": d.action == n_remote + 1 and ctl.cache is not None, "obs": d.observation}
            state.records.append(rec)
            if d.ticket is not None:
                task = asyncio.ensure_future(send(session, rec, d))
                state.tasks.add(task)
                task.add_done_callback(state.tasks.discard)
        if state.tasks:  # the last answers (each bounded by the request timeout)
            await asyncio.wait(list(state.tasks), timeout=(timeout_s + 1.0) * k)
    for rec in state.records:
        if rec["sent"] and not rec["on_time"]:
            rec["latency_ms"] = spec.deadline_s * 1000.0  # as the env: a late answer costs the whole deadline
        rec["correct"] = rec["answer"] == rec["label"]
    decides = [r["capture_ms"] + r["decide_ms"] for r in state.records]
    fps_achieved = (len(decides) - 1) / ((decides[-1] - decides[0]) / 1000.0) if len(decides) > 1 else float("nan")
    return {"records": state.records, "faults": dict(state.faults), "fps_achieved": fps_achieved,
            "pacer": pacer.stats()}


# ---- the simulator on the same episode ------------------------------------------------------------------------------
def run_sim(bundle, profile, trace, episode: Episode, start_s: float, policy, config) -> list[dict[str, Any]]:
    """The env (``config``: ``sim_config``) replaying the live episode: the same profile rows, trace and start
    offset, the same policy."""
    from envs import OffloadEnv

    env = OffloadEnv(profile, [trace], config.replace(episode_frames=len(episode.rows)))
    mine = env.core.spec
    if mine.to_dict() != bundle.spec.to_dict():
        raise ValueError(f"the env rebuilt from the bundle has another observation spec ({mine.to_dict()}) than the "
                         f"bundle ({bundle.spec.to_dict()}): the profile's latencies are not the bundle's")
    scene_start = env.core.scene_start
    scenes = np.asarray(profile.scene[episode.rows])
    pieces = []
    for s in dict.fromkeys(scenes.tolist()):
        rows = episode.rows[scenes == s]
        pieces.append((s, int(rows[0] - scene_start[s]), len(rows)))
    if policy is None:
        from agents.deploy import OnnxPolicy

        policy = OnnxPolicy(bundle.path("policy"), threads=1, name="bundle")
    policy.attach(env)
    obs, _ = env.reset(seed=0, options={"trace": 0, "start_s": start_s, "pieces": pieces})
    policy.reset()
    out = []
    for n in range(len(episode.rows)):
        action = int(np.asarray(policy.act(obs[None]))[0])
        seen = obs.copy()
        obs, _, _, _, info = env.step(action)
        if int(info["frame"]) != int(episode.rows[n]):
            raise RuntimeError(f"sim frame {n} is profile row {info['frame']}, live frame is {episode.rows[n]}")
        out.append({"action": action, "correct": bool(info["correct"]), "latency_ms": float(info["latency_ms"]),
                    "bytes": float(info["bytes"]), "late": bool(info["late"]), "refused": bool(info["refused"]),
                    "on_time": bool(info["used_remote"]), "reused": bool(info["reused"]), "obs": seen})
    return out


# ---- the report -----------------------------------------------------------------------------------------------------
DIVERGENCE_TOL = 1e-3  # above the float16 embedding's rounding in the cosine fields


def answer_timing(records: list[dict[str, Any]], trace, start_s: float, spec) -> dict[str, Any]:
    """Where a live answer's time went, medians over the answered uploads (ms): the server's own time
    (``server_ms``: body received to answer sent) and its model call (``inference_ms``) against the model time the
    env assumes (``spec.remote_compute_s``, compute + request overhead), the time outside the server beyond upload
    and round trip (arrival - upload start - upload - round trip - server time; the env's ``request_ms`` models it),
    and the answer's lateness against the env's model (arrival - its modelled arrival). Uploads are replayed on the
    trace by the env's FIFO rule from their decision times."""
    names = list(spec.action_names)
    free, rows = 0.0, []
    for r in records:
        if not r["sent"]:
            continue
        decide = (r["capture_ms"] + r["decide_ms"]) / 1000.0
        start = max(decide, free)
        upload = trace.transfer_time(start_s + start, r["bytes"])
        free = start + upload
        if r.get("answer_ms") is None:
            continue
        a = names.index(r["action_name"]) - 1
        arrival = (r["capture_ms"] + r["answer_ms"]) / 1000.0
        rows.append((r["server_ms"], r["inference_ms"], spec.remote_compute_s[a] * 1000.0,
                     (arrival - start - upload - spec.remote_rtt_s[a]) * 1000.0 - r["server_ms"],
                     (arrival - start - upload - spec.remote_rtt_s[a] - spec.remote_compute_s[a]) * 1000.0))
    keys = ("server_ms", "inference_ms", "modelled_ms", "outside_server_ms", "late_vs_model_ms")
    if not rows:
        return {"answers": 0}
    med = np.median(np.array(rows), 0)
    return {"answers": len(rows), **{f"{k}_p50": round(float(v), 2) for k, v in zip(keys, med)}}


def observation_divergence(live: np.ndarray, sim: np.ndarray, fields: Sequence[str]) -> dict[str, Any]:
    """Where the device's observations left the simulator's, per field (frames [N, D] each): on how many frames it
    differs by more than ``DIVERGENCE_TOL``, the first such frame and the mean absolute difference; fields that never
    differ are left out, the most often differing first. Live and sim act on these vectors, so the fields listed
    here are the ones to look at for an action disagreement."""
    diff = np.abs(np.asarray(live, np.float64) - np.asarray(sim, np.float64))
    off = diff > DIVERGENCE_TOL
    rows = [(name, int(off[:, j].sum()), int(np.argmax(off[:, j])), float(diff[:, j].mean()))
            for j, name in enumerate(fields) if off[:, j].any()]
    rows.sort(key=lambda r: (-r[1], r[2]))
    return {"tolerance": DIVERGENCE_TOL, "frames_any": int(off.any(1).sum()),
            "first_frame": int(np.argmax(off.any(1))) if off.any() else None,
            "fields": {name: {"frames": n, "first_frame": first, "mean_abs": round(m, 6)} for name, n, first, m in rows}}


def summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy, MB per frame, miss rate (share of sent uploads whose answer missed its deadline), latency."""
    n = len(records)
    lat = np.array([r["latency_ms"] for r in records], np.float64)
    sent = [r for r in records if r.get("sent", r["bytes"] > 0)]
    missed = [r for r in sent if not r["on_time"]]
    actions = Counter(r["action"] for r in records)
    return {"accuracy": float(np.mean([r["correct"] for r in records])) if n else float("nan"),
            "mb_per_frame": float(sum(r["bytes"] for r in records) / 1e6 / n) if n else float("nan"),
            "miss_rate": len(missed) / len(sent) if sent else 0.0, "sent": len(sent),
            "refused": sum(bool(r["refused"]) for r in records),
            "latency_ms": {f"p{q}": float(np.percentile(lat, q)) for q in (50, 90, 99)} if n else {},
            "actions": {str(k): v for k, v in sorted(actions.items())}}


def write_report(out: Path, report: dict[str, Any], trace, action_names: list[str]) -> None:
    from offload_common.files import staged_files, write_json

    with staged_files(out, lambda p: p.name in OUTPUTS) as tmp:
        write_json(tmp / "live.json", report)
        (tmp / "live.md").write_text(markdown(report))
        timeline(tmp / "timeline.png", report, trace, action_names)


def markdown(report: dict[str, Any]) -> str:
    live, sim = report["live"], report["sim"]
    rows = [("accuracy", "accuracy", "{:.3f}"), ("MB/frame", "mb_per_frame", "{:.4f}"),
            ("miss rate (sent uploads late)", "miss_rate", "{:.3f}"), ("uploads sent", "sent", "{}"),
            ("refused (send buffer full)", "refused", "{}")]
    lines = [f"# live vs sim: {report['policy']} on {report['trace']} from {report['start_s']:g} s", "",
             f"{report['frames']} frames of {report['episode']} at {report['fps']:g} fps (achieved "
             f"{report['fps_achieved']:.2f}); action agreement {report['action_agreement']:.3f}; faults "
             f"{report['faults'] or 'none'}", "", "| | live | sim |", "|---|---:|---:|"]
    for label, key, fmt in rows:
        lines.append(f"| {label} | {fmt.format(live[key])} | {fmt.format(sim[key])} |")
    for q in ("p50", "p90", "p99"):
        lines.append(f"| latency {q} (ms) | {live['latency_ms'][q]:.1f} | {sim['latency_ms'][q]:.1f} |")
    div = report.get("observation_divergence")
    if div and div["fields"]:
        top = ", ".join(f"{k} ({v['frames']} frames, mean |d| {v['mean_abs']:.3f})"
                        for k, v in list(div["fields"].items())[:6])
        lines += ["", f"Observations differ (> {div['tolerance']:g}) on {div['frames_any']} of {report['frames']} "
                  f"frames, first at frame {div['first_frame']}; most often: {top}."]
    t = report.get("answer_timing", {})
    if t.get("answers"):
        lines += ["", f"Answer time, medians over {t['answers']} answers: the server's own {t['server_ms_p50']:.1f} ms "
                  f"(model call {t['inference_ms_p50']:.1f} ms) against the env's {t['modelled_ms_p50']:.1f} ms "
                  f"(profile compute + request overhead); {t['outside_server_ms_p50']:.1f} ms outside the server "
                  f"beyond upload and round trip; answers {t['late_vs_model_ms_p50']:+.1f} ms against the env's model."]
    d = report["device"]
    lines += ["", f"Device loop (student, features, policy) per frame: median {d['ms_p50']:.1f} ms, p99 "
              f"{d['ms_p99']:.1f} ms = {d['share_p50']:.0%} / {d['share_p99']:.0%} of the frame period. Pacer release "
              f"error p50 {report['pacer'].get('release_error_ms_p50', float('nan')):.3f} ms, p99 "
              f"{report['pacer'].get('release_error_ms_p99', float('nan')):.3f} ms.", ""]
    return "\n".join(lines) + "\n"


def timeline(path: Path, report: dict[str, Any], trace, action_names: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    live = report["records"]
    t = np.array([r["capture_ms"] for r in live]) / 1000.0
    fig, ax = plt.subplots(4, 1, figsize=(11, 9), sharex=True)
    grid = np.linspace(0, t[-1] if len(t) else 1.0, 400)
    ax[0].plot(grid, trace.mbps_at(report["start_s"] + grid), color="k", lw=1)
    ax[0].set_ylabel("trace Mbit/s")
    ax[1].scatter(t, [r["action"] for r in live], s=10, label="live", marker="o")
    ax[1].scatter(t, [r["sim_action"] for r in live], s=10, label="sim", marker="x")
    ax[1].set_yticks(range(len(action_names)), action_names)
    ax[1].legend(loc="upper right")
    k = max(1, int(round(report["fps"])))
    for key, label in (("correct", "live"), ("sim_correct", "sim")):
        c = np.array([float(r[key]) for r in live])
        window = np.ones(k)
        ax[2].plot(t, np.convolve(c, window, mode="same") / np.convolve(np.ones_like(c), window, mode="same"),
                   label=label)  # a centred rolling mean (fewer frames at the ends, no zero padding)
    ax[2].set_ylabel(f"accuracy ({k} frames)")
    ax[2].legend(loc="lower right")
    ax[3].plot(t, [r["latency_ms"] for r in live], ".", label="live")
    ax[3].plot(t, [r["sim_latency_ms"] for r in live], "x", label="sim")
    ax[3].set_ylabel("latency ms")
    ax[3].set_xlabel("seconds")
    ax[3].legend(loc="upper right")
    fig.suptitle(f"{report['policy']} live vs sim on {report['trace']}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run_live(cfg: LiveConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The whole command: check inputs, start the server (unless given) and the pacer, run live, replay in the
    sim, write OUT/live.json, live.md and timeline.png; returns the report."""
    from urllib.parse import urlparse

    from agents.deploy import DeviceController
    from perception import DEFAULT_PROFILE, FrameProfile

    bundle, trace = check_inputs(cfg)
    timing = sim_config(bundle, cfg.compute_scale, cfg.student_ms)
    policy_live = make_policy(cfg.policy, cfg.params)
    policy_sim = make_policy(cfg.policy, cfg.params)
    if cfg.videos:
        raise ValueError("--video: live runs on decoded video are not implemented yet (use --scenes); the simulator "
                         "has no profile of a video's frames to replay")
    profile_path = Path(cfg.profile) if cfg.profile is not None else DEFAULT_PROFILE
    profile = FrameProfile.load(profile_path)
    if profile.meta.get("weights_sha256") != bundle.manifest.get("weights_sha256"):
        raise ValueError(f"--profile {profile_path}: its model weights differ from the bundle's: not its profile")
    trained = bundle.spec
    bundle = retimed(bundle, profile, timing)
    if cfg.compute_scale == 1.0 and cfg.student_ms is None and bundle.spec != trained:
        raise ValueError(f"{bundle.root / 'manifest.json'}: its env_config gives another observation spec "
                         f"({bundle.spec.to_dict()}) than the one it records ({trained.to_dict()}) with profile "
                         f"{profile_path}: not the bundle's profile, or the manifest was edited")
    ctl = DeviceController(bundle, policy_live, threads=cfg.threads)
    machine = machine_slowdown(ctl, profile) if cfg.slowdown == "auto" else None
    slowdown = machine["slowdown"] if machine else float(cfg.slowdown)
    if machine:
        log(f"--slowdown auto: the int8 student takes {machine['student_ms_here']:.2f} ms here and "
            f"{machine['student_ms_profile']:.2f} ms on the profile's machine: time dilation {slowdown:.2f}")
    episode = profile_episode(profile, cfg.scenes, ctl.fps, cfg.seconds, ctl.capture)
    log(f"{len(episode.frames)} frames ({episode.source}), {cfg.policy} policy, trace {trace.name} from "
        f"{cfg.start_s:g} s")
    sim = run_sim(bundle, profile, trace, episode, cfg.start_s, policy_sim, timing)
    spec = bundle.spec
    server = None
    try:
        if cfg.server is None:
            log("starting the edge server (the first start exports the models to ONNX)")
            server = ServerProcess(cache_dir=cfg.cache_dir, profile=profile_path)
            server.wait_ready()
            url = server.url
        else:
            url = cfg.server.rstrip("/")
        u = urlparse(url)
        routes = [Route("edge", u.hostname, u.port, spec.remote_rtt_s[0]),
                  Route("cloud", u.hostname, u.port, spec.remote_rtt_s[-1])]
        with PacerProcess(cfg.trace, cfg.start_s, routes, slowdown=slowdown) as pacer:
            edge = f"http://127.0.0.1:{pacer.ports['edge']}"
            cloud = f"http://127.0.0.1:{pacer.ports['cloud']}"
            live = asyncio.run(_run_live(ctl, episode, pacer, url, edge, cloud, spec.remote_rtt_s,
                                         cfg.request_timeout_s, log, slowdown))
    finally:
        if server is not None:
            server.stop()
    records = live["records"]
    divergence = observation_divergence(np.array([r.pop("obs") for r in records]),
                                        np.array([s.pop("obs") for s in sim]), spec.field_names)
    for rec, s in zip(records, sim):
        rec.update({f"sim_{k}": v for k, v in s.items()})
    period_ms = 1000.0 / episode.fps
    dev = np.array([r["device_ms"] for r in records])
    report = {
        "frames": len(records), "fps": episode.fps, "fps_achieved": live["fps_achieved"], "slowdown": slowdown,
        "machine": machine,
        "episode": episode.source, "trace": trace.name, "trace_file": str(cfg.trace), "start_s": cfg.start_s,
        "policy": cfg.policy, "policy_params": cfg.params, "compute_scale": cfg.compute_scale,
        "student_ms": float(bundle.manifest["device"]["student_s"]) * 1000.0,
        "request_ms": float(bundle.manifest["device"].get("request_s", 0.0)) * 1000.0, "bundle": str(cfg.bundle),
        "server": cfg.server or "started",
        "live": summary(records), "sim": summary(sim),
        "action_agreement": float(np.mean([r["action"] == s["action"] for r, s in zip(records, sim)])),
        "faults": live["faults"], "observation_divergence": divergence,
        "answer_timing": answer_timing(records, trace, cfg.start_s, spec),
        "device": {"ms_p50": float(np.median(dev)),
                   "decide_ms_p50": float(np.median([r["decide_ms"] for r in records])),
                   "ms_p99": float(np.percentile(dev, 99)),
                   "share_p50": float(np.median(dev) / period_ms), "share_p99": float(np.percentile(dev, 99) / period_ms)},
        "pacer": {k: v for k, v in live["pacer"].items() if k != "uploads"},
        "records": records,
    }
    write_report(Path(cfg.out), report, trace, spec.action_names)
    return report

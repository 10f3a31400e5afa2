"""The device controller: a policy deployed on raw camera frames, from a device bundle alone (no simulator).

Imports NumPy, ONNX Runtime, Pillow and ``offload_common`` only (``tests/test_deploy.py`` enforces it: no PyTorch,
Gymnasium, Numba, ``envs`` or ``perception``). Per frame it does what the environment's device does
(``envs/kernel.py``), with the same definitions:

1. ``perceive``: the int8 student on the frame (``offload_common.vision``: the profile build's own preprocessing),
   the calibrated top-k, the compact embedding, the distilled estimates, and the JPEG of the frame for every
   remote action (their sizes are observed; the chosen one is sent).
2. ``decide``: at decision time (capture time + the student's time) the answer cache takes every remote answer
   that has arrived, late ones included (it holds the answer about the most recently captured frame); the
   measurement history holds the throughputs of the H newest completed uploads; backlog, uploads in flight, time
   since the last measurement and the offload rate follow the env's FIFO uplink; the observation is built by
   ``offload_common.observation``; the policy picks the action. A remote action with a full send buffer is not
   sent (``refused``), as in the env.
3. The caller sends ``Decision.jpeg``, and reports back ``upload_finished(ticket, finish_s)`` when the uplink has
   sent it and ``answer(ticket, label, confidence, arrival_s)`` when the remote answer arrives. Reports may come
   early with future times (a simulated link): each counts only once the decision time reaches it. Reports may
   come from another thread than the frames (the state is behind one lock).

Times are seconds on one clock of the caller's choice (a simulated clock, or ``time.monotonic()``). Usage::

    ctl = DeviceController.from_bundle("bundle/")          # the bundle's policy.onnx; or policy=any NumPy Policy
    ctl.reset(start_s=clock())
    d = ctl.step(rgb_uint8_hxwx3, capture_s=t)            # Decision: action, answer, jpeg, ticket, deadline_s
    if d.jpeg is not None:
        uplink.send(d.ticket, d.jpeg)                      # later: ctl.upload_finished(d.ticket, t_done)
    ...                                                     # and:   ctl.answer(d.ticket, label, conf, t_arrived)

When an upload's finish time is not known yet at a decision, the backlog is estimated from its bytes at the current
throughput estimate (the env knows it exactly, because it simulates the link); everything else is exact.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from offload_common import observation, vision

from .bundle import Bundle, BundleError, load_bundle


@dataclass(frozen=True)
class Perception:
    """What the device computes from one frame before deciding (``DeviceController.perceive``).

    ``topk_prob`` [k] float32 and ``topk_class`` [k]: the student's calibrated top-k; ``embedding`` [D] float16 (as the
    profile stores it); ``dist`` [R + 2]: distilled P(right) of the student, each resolution, the teacher;
    ``jpegs``: the frame's JPEG for each remote action (R resolutions, then the full frame for the teacher);
    ``seconds``: wall time of the student (preprocessing and int8 network), of the features (top-k, embedding, head
    and the JPEGs) and, of those, of the JPEGs alone.
    """

    topk_prob: NDArray[np.float32]
    topk_class: NDArray[np.int64]
    embedding: NDArray[np.float16]
    dist: NDArray[np.float32]
    jpegs: tuple[bytes, ...]
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def remote_kb(self) -> NDArray[np.float64]:
        """JPEG size in kB per remote action (the observation's ``size_*_kb`` before scaling)."""
        return np.array([len(b) for b in self.jpegs], np.float64) / 1000.0


@dataclass(frozen=True)
class Decision:
    """The controller's decision for one frame.

    ``answer`` is the class to report for the frame now: the student's top-1, or the cached remote answer for
    ``reuse`` with a non-empty cache. For a sent remote action (``ticket`` is not None), ``jpeg`` holds the bytes to
    upload (at ``resolution`` px; None for the teacher's full frame); its answer supersedes ``answer`` if it arrives
    by ``deadline_s``. ``refused``: a remote action with a full send buffer, so nothing is sent. ``observation``
    [D] is what the policy saw; ``seconds`` the wall time of each part: ``student``, ``features`` (top-k, embedding,
    head, JPEGs, observation) and ``policy``.
    """

    action: int
    action_name: str
    answer: int
    ticket: int | None
    jpeg: bytes | None
    resolution: int | None
    refused: bool
    capture_s: float
    decide_s: float
    deadline_s: float
    observation: NDArray[np.float32]
    seconds: dict[str, float]


@dataclass
class _Upload:
    """One accepted upload (the env's ring row): when it was decided and finished, its answer once reported."""

    ticket: int
    decide_s: float
    capture_s: float
    nbytes: int
    remote: int  # remote action index (0..R)
    embedding: NDArray[np.float64]  # unit-length embedding of the frame it was sent for
    finish_s: float = np.inf  # unknown until upload_finished
    mbps: float = 0.0
    answer_s: float = np.inf
    label: int = -1
    confidence: float = 0.0


class DeviceController:
    """Runs a deployed policy on camera frames; state as the env defines it (see the module docstring)."""

    def __init__(self, bundle: Bundle, policy: Any = None, threads: int = 1):
        import onnxruntime as ort

        from .runtime import OnnxPolicy

        self.bundle = bundle
        self.spec = bundle.spec
        if self.spec.oracle_bandwidth:
            raise BundleError(f"{bundle.root / 'manifest.json'}: observation_spec.oracle_bandwidth is true: the policy "
                              "observes the true link throughput, which no device knows; deploy a policy trained "
                              "without --oracle-bandwidth")
        self.action_names = self.spec.action_names
        self.observation_fields = self.spec.field_names
        self.observation_spec = self.spec
        m = bundle.manifest
        self.capture = tuple(int(v) for v in m["frame"]["capture"])  # (width, height)
        self.fps = float(m["frame"]["fps"])
        self.jpeg_quality = int(m["frame"]["jpeg_quality"])
        self.student_res = int(m["frame"]["student_res"])
        self.student_s = float(m["device"]["student_s"])
        self.rate_ema = float(m["device"]["rate_ema"])
        self.temperature = float(m["device"]["temperature"])
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        opts.add_session_config_entry(*vision.EXACT_INT8)  # the profile's int8 arithmetic on every x86 CPU
        self.student = ort.InferenceSession(str(bundle.path("student")), opts, providers=["CPUExecutionProvider"])
        self._student_input = self.student.get_inputs()[0].name
        self.arrays = bundle.arrays
        self.policy = OnnxPolicy(bundle.path("policy"), threads=threads, name="bundle") if policy is None else policy
        if not callable(getattr(self.policy, "act", None)):
            raise TypeError(f"policy must be an agents.policies.Policy (with act(obs) -> actions), got "
                            f"{type(self.policy).__name__}")
        fields = getattr(self.policy, "observation_fields", None)
        if fields is not None and list(fields) != self.observation_fields:
            extra = [f for f in fields if f not in self.observation_fields]
            missing = [f for f in self.observation_fields if f not in fields]
            raise BundleError(f"policy {getattr(self.policy, 'name', type(self.policy).__name__)!r} observes fields "
                              f"that differ from the bundle's observation_spec (not in the spec: {extra}; missing: "
                              f"{missing}{'; same names in another order' if not extra and not missing else ''}); "
                              f"expected {self.observation_fields}")
        self.policy.attach(self)  # heuristics bind their columns by field name, as on the env
        self._remote_times, self._consts = observation.observation_constants(self.spec)
        self._ring = self.spec.history + self.spec.max_queue
        self._obs = np.zeros((1, self.spec.dim), np.float32)
        self._lock = threading.RLock()  # upload and answer reports may come from another thread than the frames
        self.reset(0.0)

    @classmethod
    def from_bundle(cls, bundle_dir: str | os.PathLike, policy: Any = None, threads: int = 1) -> DeviceController:
        """A controller from a bundle folder (every file's SHA-256 checked first); ``policy`` replaces the bundle's
        ``policy.onnx`` with any ``agents.policies.Policy`` whose act() is NumPy only (cbo, cbo-cond, cachenet with
        their tuned parameters). ``threads``: ONNX Runtime's intra-op threads for the student and the policy."""
        return cls(load_bundle(bundle_dir), policy, threads)

    # ---- state ------------------------------------------------------------------------------------------------
    def reset(self, start_s: float) -> None:
        """Start a new stream (the env's episode) at ``start_s``: empty cache, idle uplink, no measurements."""
        with self._lock:
            self.start_s = float(start_s)
            self.uploads: deque[_Upload] = deque(maxlen=self._ring)  # the env's ring: all in flight + the H newest
            self._evicted_finish = self.start_s  # finish time of the newest upload that left the ring
            self.issued = 0
            self.offload_ema = 0.0
            self.last_action = 0
            self.prev_embedding: NDArray[np.float64] | None = None
            self.prev_top1: int | None = None  # the student's top-1 on the previous frame
            self.top1_run = 0  # frames right before that one with the same top-1, in a row
            self.pmax_ema = 0.0  # EMA of the decided frames' top-1 probability
            self.cache: _Upload | None = None
            self.policy.reset()

    def upload_finished(self, ticket: int, finish_s: float) -> None:
        """The uplink finished sending ``ticket``'s JPEG at ``finish_s`` (it yields a throughput measurement)."""
        with self._lock:
            up = self._upload(ticket, "upload_finished")
            if not np.isfinite(finish_s) or finish_s < up.decide_s:
                raise ValueError(f"upload_finished({ticket}): finish_s={finish_s!r} must be a finite time >= the "
                                 f"decision time {up.decide_s!r} at which it was sent")
            before = [u for u in self.uploads if u.ticket < ticket]
            prev_free = before[-1].finish_s if before else self._evicted_finish
            if not np.isfinite(prev_free):
                raise ValueError(f"upload_finished({ticket}): upload {ticket - 1} was sent before it and has not "
                                 "finished; the uplink is FIFO, report finishes in sending order")
            start = max(up.decide_s, prev_free)  # the env's upload start: decision time, or when the link freed
            up.finish_s = float(finish_s)
            up.mbps = up.nbytes * 8e-6 / max(up.finish_s - start, 1e-9)

    def answer(self, ticket: int, label: int, confidence: float, arrival_s: float) -> None:
        """The remote answer to ``ticket`` (class ``label``, the model's ``confidence``) arrived at ``arrival_s``.

        It enters the answer cache at the first decision at or after ``arrival_s``, late or not. An answer to an
        upload older than the env's ring (history + send buffer uploads ago) is ignored, as in the env."""
        with self._lock:
            if not any(u.ticket == ticket for u in self.uploads) and 0 <= ticket < self.issued:
                return
            up = self._upload(ticket, "answer")
            if not np.isfinite(arrival_s):
                raise ValueError(f"answer({ticket}): arrival_s must be a finite time, got {arrival_s!r}")
            up.answer_s, up.label, up.confidence = float(arrival_s), int(label), float(confidence)

    def _upload(self, ticket: int, what: str) -> _Upload:
        for u in self.uploads:
            if u.ticket == ticket:
                return u
        raise ValueError(f"{what}({ticket!r}): no upload with that ticket in this stream (tickets are "
                         f"Decision.ticket of sent remote actions; {self.issued} sent since reset)")

    # ---- per frame ----------------------------------------------------------------------------------------------
    def check_frame(self, frame: Any) -> NDArray[np.uint8]:
        """``frame`` as the RGB uint8 [height, width, 3] array at the capture size, or a clear error."""
        w, h = self.capture
        want = f"an RGB uint8 array of shape ({h}, {w}, 3) (the bundle's capture size {w}x{h})"
        if not isinstance(frame, np.ndarray):
            raise TypeError(f"frame must be {want}, got {type(frame).__name__}")
        if frame.dtype != np.uint8:
            raise TypeError(f"frame dtype is {frame.dtype}, expected {want}")
        if frame.shape != (h, w, 3):
            raise ValueError(f"frame shape is {frame.shape}, expected {want}")
        return frame

    def perceive(self, frame: NDArray[np.uint8]) -> Perception:
        """The student's outputs, the embedding, the distilled estimates and the JPEGs of one frame."""
        img = Image.fromarray(self.check_frame(frame), "RGB")
        t0 = time.perf_counter()
        x = vision.to_input(vision.resize_crop(img, self.student_res))[None]
        logits, features = self.student.run(["logits", "features"], {self._student_input: x})
        t1 = time.perf_counter()
        a = self.arrays
        prob, cls = vision.calibrated_topk(logits, self.temperature, self.spec.top_k)
        emb = vision.embedding(features, a["embed_mean"], a["embed_components"])
        dist = vision.distilled(vision.distill_inputs(emb, prob), *(a[k] for k in vision.HEAD_KEYS))
        t2 = time.perf_counter()
        jpegs = tuple(vision.jpeg_bytes(vision.resize_crop(img, r), self.jpeg_quality) for r in self.spec.resolutions)
        jpegs += (vision.jpeg_bytes(img, self.jpeg_quality),)  # the teacher gets the full frame
        t3 = time.perf_counter()
        return Perception(prob[0], cls[0], emb[0], dist[0], jpegs, {"student": t1 - t0, "features": t3 - t1,
                                                                    "jpeg": t3 - t2})

    def step(self, frame: NDArray[np.uint8], capture_s: float, decide_s: float | None = None) -> Decision:
        """Perceive and decide one frame captured at ``capture_s`` (``decide_s`` defaults to capture_s plus the
        student's time the policy was trained with; pass the real time on a device)."""
        return self.decide(self.perceive(frame), capture_s, decide_s)

    def decide(self, p: Perception, capture_s: float, decide_s: float | None = None) -> Decision:
        """The decision for a perceived frame; updates the uplink, cache and behaviour state as the env's step."""
        with self._lock:
            return self._decide(p, capture_s, decide_s)

    def _decide(self, p: Perception, capture_s: float, decide_s: float | None) -> Decision:
        t0 = time.perf_counter()
        decide_s = capture_s + self.student_s if decide_s is None else float(decide_s)
        obs = self.observe(p, decide_s)
        t1 = time.perf_counter()
        action = int(np.asarray(self.policy.act(obs[None]))[0])
        t2 = time.perf_counter()
        n_remote = len(self.spec.resolutions) + 1
        if not 0 <= action < self.spec.n_actions:
            raise ValueError(f"policy returned action {action!r}; expected an integer in [0, {self.spec.n_actions}) "
                             f"meaning {self.action_names}")
        remote = 0 < action <= n_remote
        refused = remote and self._pending(decide_s) >= self.spec.max_queue
        send = remote and not refused
        ticket = jpeg = resolution = None
        if send:
            r = action - 1
            jpeg = p.jpegs[r]
            resolution = self.spec.resolutions[r] if r < len(self.spec.resolutions) else None
            ticket = self.issued
            if len(self.uploads) == self.uploads.maxlen:
                self._evicted_finish = self.uploads[0].finish_s
            self.uploads.append(_Upload(ticket, decide_s, float(capture_s), len(jpeg), r, self._unit(p.embedding)))
            self.issued += 1
        cached = self.cache.label if self.cache is not None else -1
        answer = cached if action == n_remote + 1 and cached >= 0 else int(p.topk_class[0])
        self.offload_ema += self.rate_ema * ((1.0 if send else 0.0) - self.offload_ema)
        self.last_action = action
        self.prev_embedding = self._unit(p.embedding)
        top1_prob = float(p.topk_prob[0])
        self.pmax_ema = (top1_prob if self.prev_top1 is None
                         else self.pmax_ema + observation.PMAX_EMA_RATE * (top1_prob - self.pmax_ema))
        self.top1_run = self._top1_run(p)
        self.prev_top1 = int(p.topk_class[0])
        return Decision(action, self.action_names[action], answer, ticket, jpeg, resolution, refused,
                        float(capture_s), decide_s, float(capture_s) + self.spec.deadline_s, obs,
                        {"student": p.seconds.get("student", 0.0), "features": p.seconds.get("features", 0.0) + t1 - t0,
                         "policy": t2 - t1})

    def observe(self, p: Perception, decide_s: float) -> NDArray[np.float32]:
        """The observation [D] at ``decide_s`` (folds the answers arrived by then into the cache, as the env)."""
        self._fold_answers(decide_s)
        done = [u for u in self.uploads if u.finish_s <= decide_s]
        pending = len(self.uploads) - len(done)
        h = self.spec.history
        meas = np.zeros((1, h))
        newest = done[::-1][:h]
        meas[0, :len(newest)] = [u.mbps for u in newest]
        sig = np.zeros(1, observation.SIGNALS)[0]
        sig["n_meas"] = len(newest)
        sig["backlog_s"] = max(self._link_free_estimate(decide_s, meas[0, :len(newest)]) - decide_s, 0.0)
        sig["pending"] = pending
        sig["since_meas_s"] = decide_s - (done[-1].finish_s if done else self.start_s)
        sig["offload_rate"] = self.offload_ema
        sig["last_action"] = self.last_action
        emb = self._unit(p.embedding)
        sig["cos_prev"] = float(emb @ self.prev_embedding) if self.prev_embedding is not None else 0.0
        c = self.cache
        if c is not None:
            sig["cache_held"] = 1
            sig["cache_src"] = c.remote
            sig["cache_age_s"] = decide_s - c.capture_s
            sig["cache_conf"] = c.confidence
            sig["cache_agrees"] = 1 if int(p.topk_class[0]) == c.label else 0
            hit = np.flatnonzero(p.topk_class == c.label)
            sig["student_p_cached"] = float(p.topk_prob[hit[-1]]) if len(hit) else 0.0
            sig["cos_cache"] = float(emb @ c.embedding)
        else:
            sig["cache_src"] = -1
        sig["top1_run"] = self._top1_run(p)
        sig["pmax_ema"] = self.pmax_ema if self.prev_top1 is not None else 0.0
        conf = observation.confidence_features(p.topk_prob[None])
        observation.observation_into(self._obs, np.zeros(1, np.int64), conf, p.remote_kb[None],
                                     np.asarray(p.dist, np.float64)[None], meas, sig[None], self._remote_times,
                                     self._consts)
        return self._obs[0].copy()

    def _top1_run(self, p: Perception) -> int:
        """Frames right before this one with the same student top-1 as it, in a row (as the env counts them)."""
        return self.top1_run + 1 if self.prev_top1 is not None and int(p.topk_class[0]) == self.prev_top1 else 0

    def _fold_answers(self, decide_s: float) -> None:
        for u in self.uploads:
            if u.answer_s <= decide_s and (self.cache is None or u.capture_s > self.cache.capture_s):
                self.cache = u

    def _pending(self, decide_s: float) -> int:
        return sum(1 for u in self.uploads if u.finish_s > decide_s)

    def _link_free_estimate(self, decide_s: float, meas: NDArray[np.float64]) -> float:
        """When the uplink is free: the last upload's finish time once known (exact, as the env); otherwise each
        unreported upload is assumed to take its bytes at the throughput estimate after the one before it."""
        if not self.uploads:
            return self.start_s
        if np.isfinite(self.uploads[-1].finish_s):
            return self.uploads[-1].finish_s
        est = len(meas) / float(np.sum(1.0 / np.maximum(meas, 1e-6))) if len(meas) else self.spec.prior_mbps
        free = self._evicted_finish
        for u in self.uploads:
            free = u.finish_s if np.isfinite(u.finish_s) else max(u.decide_s, free) + u.nbytes * 8e-6 / est
        return free

    @staticmethod
    def _unit(embedding: NDArray) -> NDArray[np.float64]:
        e = np.asarray(embedding, np.float64)
        return e / max(float(np.linalg.norm(e)), 1e-12)

    def describe(self) -> dict[str, Any]:
        """What runs here: the bundle, the policy, the frame contract."""
        return {"bundle": str(self.bundle.root), "policy": self.policy.describe(), "capture": list(self.capture),
                "fps": self.fps, "actions": self.action_names}


__all__ = ["Decision", "DeviceController", "Perception"]

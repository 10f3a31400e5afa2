"""The device controller against the profile and the simulator, from re-rendered pixels up.

1. Perception: the profile's scenes are re-rendered from ../shared's photos exactly as the build rendered them, and
   the controller's calibrated top-k, JPEG sizes, embedding and distilled estimates on those frames are compared
   with the profile's.
2. Dynamics: the controller is driven frame by frame with a simulated clock and the env's own link model
   (``Trace.transfer_time``, the round trips and compute times of the spec), feeding back upload finishes and
   remote answers; its observations and actions must equal the env's at every step.

Tolerances (and why): the top-k probabilities and JPEG sizes are compared exactly. Classes of equal probability
(the int8 logits are quantized, so ties are common) may come in another order: NumPy's argsort is not stable and
its SIMD implementation differs between CPUs, so classes are compared as sets per probability value. The embedding
is the float16 rounding of a float32 projection whose last bits depend on BLAS's summation order (batch of 35,881
rows at build time, one row here), so it may differ by one float16 ulp; the distilled head is checked exactly
(to float32 rounding) on the profile's own embedding. The step-for-step test runs the env on the controller's own
perception of these frames (substituted for the profile's after check 1), so everything else must match to the
bit: JPEG bytes from pixels, uplink, measurement history, answer cache, observation, action.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from agents.deploy import DeviceController, load_bundle
from agents.policies import CacheNetPolicy
from envs import EnvConfig, OffloadVectorEnv
from offload_common import vision
from offload_common.files import read_json
from tests.helpers import profile_scene_frames

N_SCENES = 3  # test-side scenes (their distilled estimates come from the head the bundle ships)


@pytest.fixture(scope="module")
def perceived(device_run):
    """The controller's perception of N_SCENES test-side scenes, re-rendered from the photos."""
    profile = device_run["profile"]
    _, test_ids = profile.split_ids(0.3, 0)
    scenes = sorted(int(s) for s in test_ids[:N_SCENES])
    frames = profile_scene_frames(profile, scenes)
    ctl = DeviceController.from_bundle(device_run["bundle"])
    rows = np.concatenate([np.flatnonzero(profile.scene == s) for s in scenes])
    percs = [ctl.perceive(f) for s in scenes for f in frames[s]]
    return {"ctl": ctl, "scenes": scenes, "rows": rows, "percs": percs}


def _same_up_to_ties(prob: np.ndarray, ours: np.ndarray, theirs: np.ndarray) -> bool:
    """Top-k classes equal as sets per probability value (a tie at the k-th value may hold other classes)."""
    for v in np.unique(prob):
        a, b = set(ours[prob == v].tolist()), set(theirs[prob == v].tolist())
        if (a != b) if v > prob.min() else len(a) != len(b):
            return False
    return True


def test_perception_on_rerendered_frames_equals_the_profile(device_run, perceived) -> None:
    profile = device_run["profile"]
    rows, percs = perceived["rows"], perceived["percs"]
    assert len(percs) == len(rows) > 60
    prob = np.stack([p.topk_prob for p in percs])
    cls = np.stack([p.topk_class for p in percs])
    assert np.array_equal(prob, profile.student_topk_prob[rows])  # exactly: same int8 arithmetic, same softmax
    assert all(_same_up_to_ties(prob[i], cls[i], profile.student_topk_class[r]) for i, r in enumerate(rows))
    sizes = np.stack([[len(b) for b in p.jpegs] for p in percs])
    assert np.array_equal(sizes, np.c_[profile.server_bytes[rows], profile.teacher_bytes[rows]])  # JPEGs bit-exact
    emb = np.stack([p.embedding for p in percs])
    want = profile.embedding[rows]
    ulp = np.spacing(np.abs(want)).astype(np.float32)
    diff = np.abs(emb.astype(np.float32) - want.astype(np.float32))
    assert (diff <= ulp).all(), f"embedding off by more than one float16 ulp: {diff.max()}"
    assert (diff == 0).mean() > 0.99  # nearly all values bit-identical
    a = perceived["ctl"].arrays
    head = vision.distilled(vision.distill_inputs(want, profile.student_topk_prob[rows]),
                            *(a[k] for k in vision.HEAD_KEYS))
    assert np.abs(head - profile.distilled[rows]).max() <= 1e-6  # the bundle's head is the profile's (test scenes)
    dist = np.stack([p.dist for p in percs])
    assert np.abs(dist - profile.distilled[rows]).max() < 1e-3  # through a one-ulp embedding difference only


def _env_on_controller_perception(device_run, perceived):
    """The env over the perceived scenes, with the controller's own perception in place of the profile's."""
    profile, rows, percs = device_run["profile"], perceived["rows"], perceived["percs"]
    sub = profile.select_scenes(np.array(perceived["scenes"]))
    cls = np.stack([p.topk_class for p in percs])
    sub = dataclasses.replace(sub, student_topk_prob=np.stack([p.topk_prob for p in percs]), student_topk_class=cls,
                              embedding=np.stack([p.embedding for p in percs]),
                              distilled=np.stack([p.dist for p in percs]), student_correct=cls[:, 0] == sub.label)
    assert np.array_equal(sub.label, profile.label[rows])
    info = read_json(device_run["run"] / "train.json")
    n = len(rows) - 1
    cfg = EnvConfig.from_dict(info["env_config"]).replace(profile_split="all", trace_split="all", episode_frames=n)
    return sub, cfg


def _drive(ctl: DeviceController, sub, cfg: EnvConfig, trace, start_s: float, order: list[int], percs,
           live: bool = False) -> dict:
    """One episode over the scenes in ``order``: env and controller side by side; returns what happened.

    The link reports each upload's finish and answer at once (a simulated link knows them in advance), or with
    ``live`` only once the clock has reached them (what a real device sees): then the backlog of an upload still
    in flight is the controller's estimate, so backlog and slack are compared for sanity, not equality."""
    env = OffloadVectorEnv(1, sub, [trace], cfg)
    assert env.observation_spec == ctl.spec  # the bundle's spec is the env's
    lengths = [int((sub.scene == s).sum()) for s in np.unique(sub.scene)]
    firsts = np.r_[0, np.cumsum(lengths)[:-1]]
    pieces = np.array([[j, 0, lengths[j]] for j in order])
    frames = np.concatenate([np.arange(firsts[j], firsts[j] + lengths[j]) for j in order])
    obs = env.pin_episodes([0], [start_s], [pieces])
    ctl.reset(start_s)
    spec = ctl.spec
    frame_s = 1.0 / sub.fps
    link_free = start_s
    seen = {"actions": [], "late": 0, "refused": 0, "reused": 0, "on_time": 0, "estimated_backlog": 0}
    estimated = np.array([f == "backlog" or f.startswith("slack_") for f in ctl.observation_fields])
    events: list[tuple[float, int, tuple]] = []  # (time, order, report) still to be delivered in live mode
    for n in range(cfg.episode_frames):
        f = int(frames[n])
        capture = start_s + n * frame_s
        if live:
            due = [e for e in events if e[0] <= capture + ctl.student_s]
            events = [e for e in events if e[0] > capture + ctl.student_s]
            for _, _, (method, args) in sorted(due, key=lambda e: e[:2]):
                method(*args)
        d = ctl.decide(percs[f], capture)
        differ = d.observation != obs[0]
        if live and differ.any():
            assert not differ[~estimated].any(), f"step {n}: fields differ {np.array(ctl.observation_fields)[differ]}"
            seen["estimated_backlog"] += 1
        else:
            assert not differ.any(), f"step {n}: fields differ {np.array(ctl.observation_fields)[differ]}"
        obs, _, _, _, info = env.step(np.array([d.action]))
        assert int(info["frame"][0]) == f and int(info["action"][0]) == d.action
        assert bool(info["refused"][0]) == d.refused
        final = d.answer
        if d.ticket is not None:  # the link, as the env models it
            r = d.action - 1
            up_start = max(d.decide_s, link_free)
            finish = up_start + trace.transfer_time(up_start, len(d.jpeg))
            link_free = finish
            arrival = finish + spec.remote_rtt_s[r] + spec.remote_compute_s[r]
            label = sub.server_pred[f, r] if r < len(spec.resolutions) else sub.teacher_pred[f]
            conf = sub.server_conf[f, r] if r < len(spec.resolutions) else sub.teacher_conf[f]
            reports = [(finish, (ctl.upload_finished, (d.ticket, finish))),
                       (arrival, (ctl.answer, (d.ticket, int(label), float(conf), arrival)))]
            for k, (t, report) in enumerate(reports):
                if live:
                    events.append((t, 2 * d.ticket + k, report))
                else:
                    report[0](*report[1])
            assert float(info["bytes"][0]) == len(d.jpeg)
            on_time = arrival <= d.deadline_s + 1e-12
            assert bool(info["late"][0]) == (not on_time)
            seen["late"] += not on_time
            seen["on_time"] += on_time
            final = int(label) if on_time else final
        else:
            assert float(info["bytes"][0]) == 0.0
        assert bool(info["correct"][0]) == (final == sub.label[f])
        seen["reused"] += bool(info["reused"][0])
        seen["refused"] += d.refused
        seen["actions"].append(d.action)
    return seen


@pytest.mark.parametrize("policy_name", ["bundle", "cachenet", "cachenet+temporal"])
def test_controller_reproduces_the_env_step_for_step_from_pixels(device_run, perceived, policy_name) -> None:
    sub, cfg = _env_on_controller_perception(device_run, perceived)
    policy = None if policy_name == "bundle" else CacheNetPolicy(tau=0.0, margin=0.0, min_cos=0.95, max_age_s=1.0,
                                                                 refresh_margin=-5.0)
    bundle = load_bundle(device_run["bundle"])
    if policy_name.endswith("+temporal"):  # the student's recent history in the observation, on both sides
        cfg = cfg.replace(temporal_observation=True)
        bundle = dataclasses.replace(bundle, spec=dataclasses.replace(bundle.spec, temporal=True))
    ctl = DeviceController(bundle, policy=policy)
    traces = sorted(device_run["traces"], key=lambda t: t.mean_mbps)
    totals = {"late": 0, "refused": 0, "reused": 0, "on_time": 0, "actions": set()}
    for trace, start_s, order in ((traces[0], 3.0, [0, 1, 2]), (traces[len(traces) // 2], 40.25, [2, 0, 1]),
                                  (traces[-1], 0.5, [1, 2, 0])):
        seen = _drive(ctl, sub, cfg, trace, start_s, order, perceived["percs"])
        for k in ("late", "refused", "reused", "on_time"):
            totals[k] += seen[k]
        totals["actions"] |= set(seen["actions"])
    # the episodes exercised the parts of the state that matter
    assert totals["on_time"] > 0 and totals["late"] > 0
    if policy_name == "cachenet":
        assert totals["reused"] > 0 and totals["refused"] > 0
    assert len(totals["actions"]) >= 2


def test_reports_delivered_when_they_happen_differ_only_in_the_estimated_backlog(device_run, perceived) -> None:
    """A real device learns of a finished upload or an answer only when it happens: every field but the backlog
    (and the slack built on it) still equals the env's, and the backlog estimate is used while uploads are in
    flight."""
    sub, cfg = _env_on_controller_perception(device_run, perceived)
    ctl = DeviceController.from_bundle(device_run["bundle"], policy=CacheNetPolicy(
        tau=0.0, margin=0.0, min_cos=0.95, max_age_s=1.0, refresh_margin=-5.0))
    trace = sorted(device_run["traces"], key=lambda t: t.mean_mbps)[0]
    seen = _drive(ctl, sub, cfg, trace, 3.0, [0, 1, 2], perceived["percs"], live=True)
    assert seen["estimated_backlog"] > 0 and seen["late"] > 0 and seen["reused"] > 0

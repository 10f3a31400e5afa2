"""Small hand-built inputs whose every outcome can be computed by hand."""

from __future__ import annotations

import numpy as np

from bandwidth_traces import Trace
from perception import FrameProfile


def hand_profile(n_clips: int = 3, frames: int = 4, server_bytes: tuple[int, ...] = (50_000, 100_000),
                 teacher_bytes: int = 250_000, scene_lengths: tuple[int, ...] | None = None,
                 fps: float | None = 10.0) -> FrameProfile:
    """A profile in which the student is always wrong, the server right at every resolution, the teacher right.

    Server compute 10 ms at every resolution, teacher 20 ms, student 0 ms (EnvConfig.student_ms overrides).
    ``n_clips`` scenes of ``frames`` frames each, or scenes of the given ``scene_lengths``; rendered at ``fps``
    (``meta["fps"]``; None leaves it out, as in profiles written before it existed). Each scene's frames share
    an embedding direction (one axis per scene, cosine 1 inside a scene, 0 across scenes); the distilled
    estimates are 0.2 for the student, 0.9 for each resolution and 0.95 for the teacher.
    """
    lengths = np.full(n_clips, frames) if scene_lengths is None else np.asarray(scene_lengths)
    n = int(lengths.sum())
    r = len(server_bytes)
    res = [100 * (i + 1) for i in range(r)]
    scene = np.repeat(np.arange(len(lengths)), lengths)
    embedding = np.zeros((n, max(len(lengths), 2)), np.float16)
    embedding[np.arange(n), scene] = 1.0
    distilled = np.tile(np.r_[0.2, np.full(r, 0.9), 0.95], (n, 1)).astype(np.float32)
    p = np.zeros((n, 5), np.float32)
    p[:, 0] = np.linspace(0.3, 0.9, n)
    p[:, 1:] = (1 - p[:, :1]) / 5
    return FrameProfile(
        label=np.zeros(n), scene=np.repeat(np.arange(len(lengths)), lengths), calib=np.zeros(n, bool),
        student_topk_prob=p, student_topk_class=np.tile(np.arange(1, 6), (n, 1)), student_raw_conf=p[:, 0],
        student_correct=np.zeros(n, bool), student_fp32_correct=np.zeros(n, bool),
        server_bytes=np.tile(server_bytes, (n, 1)), server_pred=np.zeros((n, r)), server_conf=np.ones((n, r)),
        server_correct=np.ones((n, r), bool), teacher_bytes=np.full(n, teacher_bytes), teacher_pred=np.zeros(n),
        teacher_conf=np.ones(n), teacher_correct=np.ones(n, bool), embedding=embedding, distilled=distilled,
        meta={"server_resolutions": res, "latency_ms": {**{f"server@{x}": 10.0 for x in res},
                                                        "teacher@300": 20.0, "student_int8@96": 0.0},
              **({} if fps is None else {"fps": fps})})


def constant_trace(mbps: float = 8.0, duration: float = 100.0, name: str = "flat") -> Trace:
    return Trace(name, "hand", np.array([0.0]), np.array([mbps]), duration)


def outage_trace() -> Trace:
    """8 Mbit/s (1 MB/s) for 1 s, an outage for 1 s, 8 Mbit/s for 1 s; period 3 s."""
    return Trace("outage", "hand", np.array([0.0, 1.0, 2.0]), np.array([8.0, 0.0, 8.0]), 3.0)


def profile_scene_frames(profile: FrameProfile, scenes: list[int]) -> dict[int, list[np.ndarray]]:
    """The RGB uint8 frames of the given scenes of a photo profile, re-rendered from ../shared's photos exactly as
    its build rendered them (same photos, same seeds: ``perception.build.photo_scenes``); skips the test without
    the photos."""
    import pytest

    from perception import load_labelled_images, shared_images_dir
    from perception.build import BuildConfig, photo_scenes

    images = shared_images_dir()
    if images is None or not images.is_dir():
        pytest.skip("../shared/datasets/imagenet-sample not present: the profile's scenes cannot be re-rendered")
    cfg = BuildConfig.from_json(profile.meta["build"])
    sources = photo_scenes(load_labelled_images(images), cfg)
    out = {}
    for s in scenes:
        frames = [np.asarray(f) for f in sources[s].frames()]
        assert len(frames) == int((profile.scene == s).sum()), f"scene {s} re-rendered to another length"
        out[s] = frames
    return out


def hand_results():
    """Paired results of local and the oracle on the hand profile over a fast and a slow constant trace, the traces'
    mean throughputs and the action names: a small report's inputs (tests of report writing)."""
    from agents.evaluation import evaluate_many
    from agents.policies import ConstantPolicy, HindsightOracle
    from envs import EnvConfig, OffloadVectorEnv

    prof = hand_profile(n_clips=4)
    traces = [constant_trace(8.0), constant_trace(0.5, 50.0, "slow")]
    cfg = EnvConfig(fps=10, deadline_ms=200, student_ms=0.0, device_ms=0.0, request_ms=0.0, episode_frames=10,
                    profile_split="all", trace_split="all")
    pols = {"local": ConstantPolicy(0, "local"), "oracle": HindsightOracle()}
    res = evaluate_many(pols, lambda n, t: OffloadVectorEnv(n, prof, t, cfg), traces, episodes=2, seed=0)
    return res, np.array([t.mean_mbps for t in traces]), ["local", "offload@100", "offload@200", "teacher", "reuse"]


# a training run of the CLI that takes seconds: at x1, since the default mixture of 5 speeds validates on 5 times
# as many episodes (the default itself is tested in test_workflow and by the main job's test in test_training)
SMALL = ["--timesteps", "1024", "--n-envs", "8", "--train-bandwidth-scales", "1", "--no-progress"]


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    """Run ``train_agent.py`` in-process; returns (exit status, stderr). argparse errors exit with status 2."""
    import train_agent

    try:
        rc = train_agent.main(list(argv))
    except SystemExit as exc:
        rc = exc.code
    return rc, capsys.readouterr().err


def snapshot(folder) -> dict[str, tuple[int, int]]:
    """(inode, mtime_ns) of every file under ``folder``: any rewrite (atomic or not) changes it."""
    return {str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


"""The device bundle: one folder with everything a device needs to run a trained policy on camera frames.

Contents (``write_bundle``; every file's SHA-256 is in the manifest, and ``load_bundle`` checks them all):

| file | what |
|---|---|
| ``policy.onnx`` | the policy (``export_model``): obs float32 [batch, D] -> logits, action |
| ``student_int8.onnx`` | the int8 student the frame profile was measured with: x [batch, 3, r, r] -> logits, features |
| ``embed_mean.npy``, ``embed_components.npy`` | the embedding projection (``offload_common.vision.embedding``) |
| ``distill_*.npy`` | the distilled head's weights (``offload_common.vision.distilled``) |
| ``manifest.json`` | format version; the full ``ObservationSpec``, action names, observation fields; frame rate,
  capture size, JPEG quality and resolutions; the student's temperature, the device's time from capture to decision
  (``device.student_s``) and the per-request overhead (``device.request_s``); the ``EnvConfig`` the policy was
  trained with (``env_config``: the live run's simulator replays it); model names and weight hashes; the SHA-256
  of every other file |

Reading (``load_bundle``) imports NumPy only; writing imports the training code, PyTorch and ``perception``, when
called. A bundle is written whole or not at all (built in a temporary folder beside it, then swapped in).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from offload_common import vision
from offload_common.files import atomic_folder, check_output_dir, read_json, write_json
from offload_common.observation import ObservationSpec

FORMAT = "offload-gym device bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
POLICY = "policy.onnx"
STUDENT = "student_int8.onnx"
ARRAY_KEYS = (*vision.PROJECTION_KEYS, *vision.HEAD_KEYS)
FILES = {"policy": POLICY, "student": STUDENT, **{k: f"{k}.npy" for k in ARRAY_KEYS}}


class BundleError(ValueError):
    """A bundle that cannot be used: a missing or altered file, another format version, an inconsistent manifest;
    the message names the file or field and what was expected."""


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Bundle:
    """A checked bundle: its folder, manifest, observation spec and arrays (``load_bundle``)."""

    root: Path
    manifest: dict[str, Any]
    spec: ObservationSpec
    arrays: dict[str, NDArray[np.float32]]

    def path(self, role: str) -> Path:
        """The file of a role: ``policy`` or ``student`` (or an array key)."""
        return self.root / FILES[role]


def load_bundle(bundle_dir: str | os.PathLike) -> Bundle:
    """Read and check a bundle folder: format version, every file present with its recorded SHA-256, the spec
    consistent with the observation fields and action names. Raises BundleError naming what is wrong."""
    root = Path(bundle_dir)
    mpath = root / MANIFEST
    if not root.is_dir():
        raise BundleError(f"{root}: no such bundle folder (expected a folder written by `train_agent.py export RUN "
                          "--bundle DIR`)")
    if not mpath.is_file():
        raise BundleError(f"{mpath}: missing; {root} is not a device bundle (written by `train_agent.py export RUN "
                          "--bundle DIR`)")
    try:
        m = read_json(mpath, "bundle manifest")
    except ValueError as exc:
        raise BundleError(str(exc)) from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise BundleError(f"{mpath}: field 'format' is {m.get('format') if isinstance(m, dict) else m!r}, expected "
                          f"{FORMAT!r}")
    if m.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{mpath}: format_version {m.get('format_version')!r}; this code reads device bundle format "
                          f"{FORMAT_VERSION} (re-export the run with this code's `export --bundle`)")
    for key in ("observation_spec", "observation_fields", "action_names", "frame", "device", "files"):
        if key not in m:
            raise BundleError(f"{mpath}: missing field {key!r}")
    try:
        spec = ObservationSpec.from_dict(m["observation_spec"], f"{mpath}: observation_spec")
    except ValueError as exc:
        raise BundleError(str(exc)) from None
    if m["observation_fields"] != spec.field_names:
        raise BundleError(f"{mpath}: observation_fields {m['observation_fields']} differ from the observation_spec's "
                          f"fields {spec.field_names}")
    if m["action_names"] != spec.action_names:
        raise BundleError(f"{mpath}: action_names {m['action_names']} differ from the observation_spec's actions "
                          f"{spec.action_names}")
    recorded = m["files"]
    for name in FILES.values():
        path = root / name
        if name not in recorded:
            raise BundleError(f"{mpath}: field 'files' lacks {name!r} (expected a SHA-256 for each of "
                              f"{sorted(FILES.values())})")
        if not path.is_file():
            raise BundleError(f"{path}: missing from the bundle (the manifest lists it with SHA-256 "
                              f"{recorded[name][:12]}...)")
        got = sha256_file(path)
        if got != recorded[name]:
            raise BundleError(f"{path}: SHA-256 {got} differs from the manifest's {recorded[name]}: the file was "
                              "altered or replaced; re-export the bundle")
    arrays = {k: np.load(root / f"{k}.npy", allow_pickle=False) for k in ARRAY_KEYS}
    fr = m["frame"]
    for key in ("fps", "capture", "jpeg_quality", "student_res", "offload_resolutions"):
        if key not in fr:
            raise BundleError(f"{mpath}: field 'frame' lacks {key!r}")
    if list(fr["offload_resolutions"]) != list(spec.resolutions):
        raise BundleError(f"{mpath}: frame.offload_resolutions {fr['offload_resolutions']} differ from the "
                          f"observation_spec's resolutions {list(spec.resolutions)}")
    for key in ("student_s", "rate_ema", "temperature"):
        if key not in m["device"]:
            raise BundleError(f"{mpath}: field 'device' lacks {key!r}")
    d = arrays["embed_components"].shape[1]
    head_in = arrays["distill_mu"].shape[0]
    if head_in != d + spec.top_k + 2 or arrays["distill_w1"].shape[1] != len(spec.resolutions) + 2:
        raise BundleError(f"{root}: the distilled head takes {head_in} inputs and gives {arrays['distill_w1'].shape[1]} "
                          f"outputs; expected {d + spec.top_k + 2} (embedding {d} + top-{spec.top_k} + 2) and "
                          f"{len(spec.resolutions) + 2} (student, each resolution, teacher)")
    return Bundle(root, m, spec, arrays)


# ---- writing (imports the training code and perception when called) ---------------------------------------------
def profile_student(profile_path: str | os.PathLike, profile: Any) -> Path:
    """The int8 student ONNX a profile was built with: the committed one for the committed profile, else the build's
    own copy in ``<profile>.parts/``. Checked against the SHA-256 the profile records when it has one."""
    import perception

    path = Path(profile_path)
    build = profile.meta.get("build", {})
    recorded = profile.meta.get("student_onnx", {})
    committed = perception.DEFAULT_PROFILE
    if path.resolve() == committed.resolve() or (path.is_file() and committed.is_file()
                                                  and sha256_file(path) == sha256_file(committed)):
        # the committed profile, also as another checkout's copy (a run folder moved between checkouts)
        student = perception.DEFAULT_STUDENT
    else:
        name = recorded.get("file") or f"{build.get('student')}-{build.get('student_res')}-features-int8.onnx"
        student = path.with_name(path.name + ".parts") / name
    if not student.is_file():
        raise FileNotFoundError(f"the int8 student of profile {path} is not at {student} (a profile build keeps it in "
                                "<profile>.parts/; the committed profile's ships as perception/data/student_int8.onnx)")
    if recorded.get("sha256") and sha256_file(student) != recorded["sha256"]:
        raise BundleError(f"{student}: SHA-256 differs from the one profile {path} records for its student "
                          f"({recorded['sha256']}): it is not the model the profile was measured with")
    return student




def write_bundle(run_dir: str | os.PathLike, out_dir: str | os.PathLike, profile: str | os.PathLike | None = None,
                 flag: str = "--bundle") -> Path:
    """Write the device bundle of a finished training run (SB3 or RLlib) to ``out_dir``; returns it.

    The run's ``train.json`` gives the observation spec and layout, its ``config.json`` the profile (``profile``
    overrides). ``out_dir`` is checked first (``flag`` names it in errors): it must be missing, empty, or a bundle
    (which is replaced whole); a folder holding anything else is refused, so nothing the project did not write is
    deleted.
    """
    from envs import EnvConfig, decision_seconds
    from perception import FrameProfile

    from .export import export_run

    run = Path(run_dir)
    out = check_output_dir(out_dir, flag)
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise ValueError(f"{flag} {out}: folder holds files and is not a device bundle; give a new or empty folder")
    if not (run / "train.json").is_file():
        raise FileNotFoundError(f"{run} is not a finished training run folder (no train.json)")
    info = read_json(run / "train.json", "training record")
    if "observation_spec" not in info:
        raise ValueError(f"{run / 'train.json'} lacks 'observation_spec' (written by older code): a device cannot "
                         "rebuild the observation its policy was trained with; retrain the run with this code")
    spec = ObservationSpec.from_dict(info["observation_spec"], f"{run / 'train.json'}: observation_spec")
    if info.get("observation_fields") != spec.field_names:
        raise ValueError(f"{run / 'train.json'}: observation_fields differ from its observation_spec's fields")
    env_config = info.get("env_config")
    if not isinstance(env_config, dict):
        raise ValueError(f"{run / 'train.json'} lacks 'env_config' (written by older code); retrain the run")
    if profile is None:
        cfg = read_json(run / "config.json", "run config") if (run / "config.json").is_file() else {}
        if "profile" not in cfg:
            raise ValueError(f"{run / 'config.json'} does not name the run's frame profile; pass profile=PATH")
        profile = cfg["profile"]
    prof = FrameProfile.load(profile)
    if tuple(prof.resolutions) != spec.resolutions or prof.top_k != spec.top_k:
        raise ValueError(f"profile {profile} has resolutions {prof.resolutions} and top-{prof.top_k}, but the run "
                         f"was trained on {spec.resolutions} and top-{spec.top_k}: not the run's profile")
    for key in ARRAY_KEYS:
        if key not in prof.device_arrays:
            raise ValueError(f"profile {profile} has no device array {key!r} (profile format 1); rebuild it")
    if prof.meta.get("weights_sha256") != info.get("profile_weights_sha256", prof.meta.get("weights_sha256")):
        raise ValueError(f"profile {profile}'s model weights differ from those the run {run} was trained with")
    student = profile_student(profile, prof)
    config = EnvConfig.from_dict(env_config)  # the timing the policy was trained with
    meta = prof.meta
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_folder(out) as tmp:
        export_run(run, tmp / POLICY)
        shutil.copyfile(student, tmp / STUDENT)
        for key in ARRAY_KEYS:
            np.save(tmp / f"{key}.npy", np.asarray(prof.device_arrays[key], np.float32), allow_pickle=False)
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "observation_spec": spec.to_dict(), "observation_fields": spec.field_names,
            "action_names": spec.action_names,
            "frame": {"fps": prof.fps, "capture": list(meta["capture"]), "jpeg_quality": int(meta["jpeg_quality"]),
                      "student_res": int(meta["student_res"]), "offload_resolutions": list(spec.resolutions),
                      "teacher_input": "the full capture frame as JPEG (the teacher resizes it to "
                                       f"{meta.get('teacher_res')} px)",
                      "format": "RGB uint8 [height, width, 3]"},
            "device": {"student_s": decision_seconds(prof, config), "request_s": config.request_ms / 1000.0,
                       "rate_ema": float(env_config["rate_ema"]),
                       "temperature": float(meta["temperature"]), "top_k": spec.top_k,
                       "embedding_dim": int(prof.device_arrays["embed_components"].shape[1])},
            "env_config": config.to_dict(),
            "models": meta.get("models", {}), "weights_sha256": meta.get("weights_sha256", {}),
            "student_onnx": {"file": STUDENT, "source": str(student)},
            "source": {"run": str(run), "framework": info.get("framework"), "profile": str(profile),
                       "profile_built_at": meta.get("built_at")},
            "files": {name: sha256_file(tmp / name) for name in FILES.values()},
        }
        write_json(tmp / MANIFEST, manifest)
        load_bundle(tmp)  # what was written reads back and checks
    return out


__all__ = ["FORMAT_VERSION", "Bundle", "BundleError", "load_bundle", "profile_student", "write_bundle"]

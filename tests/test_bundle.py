"""The device bundle: what `export --bundle` writes, that it stands on its own, and the errors for bad input."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from agents.deploy import BundleError, DeviceController, OnnxPolicy, load_bundle, write_bundle
from agents.deploy.bundle import FILES, MANIFEST, sha256_file
from agents.policies import CacheNetPolicy, CBOCondPolicy, CBOPolicy, ConstantPolicy
from agents.training import load_run_policy
from envs import EnvConfig, OffloadVectorEnv
from offload_common.files import read_json, write_json
from offload_common.observation import ObservationSpec
from perception import DEFAULT_STUDENT


def _copy(bundle: Path, tmp_path: Path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(bundle, out)
    return out


def test_observation_spec_round_trips_and_names_bad_fields() -> None:
    spec = ObservationSpec(5, 4, (112, 160), 0.2, (0.03, 0.03, 0.08), (0.01, 0.02, 0.05), 16, 1.0, False)
    d = json.loads(json.dumps(spec.to_dict()))
    assert ObservationSpec.from_dict(d) == spec and d["format_version"] == 2
    # format 1 (bundles and runs written before the temporal fields existed) reads as temporal=False
    old = {k: v for k, v in d.items() if k != "temporal"}
    assert ObservationSpec.from_dict({**old, "format_version": 1}) == spec
    with pytest.raises(ValueError, match="field 'temporal' is not part of ObservationSpec format 1"):
        ObservationSpec.from_dict({**d, "format_version": 1})
    with_history = dataclasses.replace(spec, temporal=True)
    assert ObservationSpec.from_dict(with_history.to_dict()) == with_history
    assert with_history.field_names[-2:] == ["top1_stable", "pmax_ema"] and with_history.dim == spec.dim + 2
    assert spec.action_names == ["local", "offload@112", "offload@160", "teacher", "reuse"]
    with pytest.raises(ValueError, match=r"missing field\(s\) \['deadline_s'\]; unknown field\(s\) \['deadline'\]"):
        ObservationSpec.from_dict({**{k: v for k, v in d.items() if k != "deadline_s"}, "deadline": 0.2})
    with pytest.raises(ValueError, match="format_version 3; this code reads ObservationSpec formats 1 and 2"):
        ObservationSpec.from_dict({**d, "format_version": 3})
    with pytest.raises(ValueError, match=r"field 'remote_rtt_s' has 2 values, expected 3"):
        ObservationSpec.from_dict({**d, "remote_rtt_s": [0.03, 0.03]})
    with pytest.raises(ValueError, match=r"field 'history' must be an integer, got 4.5"):
        ObservationSpec.from_dict({**d, "history": 4.5})


def test_runs_record_the_spec_and_the_bundle_holds_what_a_device_needs(device_run) -> None:
    run, bundle, profile = device_run["run"], device_run["bundle"], device_run["profile"]
    info = read_json(run / "train.json")
    env = OffloadVectorEnv(1, profile, device_run["traces"][:2], EnvConfig.from_dict(info["env_config"]))
    spec = env.observation_spec
    assert ObservationSpec.from_dict(info["observation_spec"]) == spec and spec.max_queue == 2
    assert info["observation_fields"] == spec.field_names and info["action_names"] == spec.action_names
    assert sorted(p.name for p in bundle.iterdir()) == sorted([*FILES.values(), MANIFEST])
    m = read_json(bundle / MANIFEST)
    assert ObservationSpec.from_dict(m["observation_spec"]) == spec
    assert m["observation_fields"] == spec.field_names and m["action_names"] == spec.action_names
    assert m["frame"] == {**m["frame"], "fps": 15.0, "capture": [448, 336], "jpeg_quality": 85, "student_res": 128,
                          "offload_resolutions": [112, 160, 208, 256]}
    assert m["device"]["student_s"] == env.core.student_s and m["device"]["rate_ema"] == env.config.rate_ema
    assert m["device"]["temperature"] == profile.meta["temperature"]
    assert m["weights_sha256"] == profile.meta["weights_sha256"] and m["models"] == profile.meta["models"]
    assert m["files"] == {name: sha256_file(bundle / name) for name in FILES.values()}
    assert (bundle / "student_int8.onnx").read_bytes() == DEFAULT_STUDENT.read_bytes()
    for key in profile.device_arrays:
        assert np.array_equal(np.load(bundle / f"{key}.npy"), profile.device_arrays[key]), key
    meta = {p.key: p.value for p in onnx.load(str(bundle / "policy.onnx")).metadata_props}
    assert ObservationSpec.from_dict(json.loads(meta["observation_spec"])) == spec  # export copies the spec
    obs = OffloadVectorEnv(64, profile, device_run["traces"][:8], env.config).reset(seed=0)[0]
    assert np.array_equal(OnnxPolicy(bundle / "policy.onnx").act(obs), load_run_policy(run).act(obs))  # the run's


def test_cli_export_bundle_and_onnx_both_work(device_run, tmp_path: Path, capsys) -> None:
    from train_agent import main

    run = device_run["run"]
    out = tmp_path / "b"
    assert main(["export", str(run), "--bundle", str(out)]) == 0  # the profile comes from the run's config.json
    assert "wrote device bundle" in capsys.readouterr().out
    new, old = load_bundle(out), load_bundle(device_run["bundle"])
    assert new.spec == old.spec and new.manifest["files"]["student_int8.onnx"] == old.manifest["files"][
        "student_int8.onnx"] and new.manifest["files"]["distill_w1.npy"] == old.manifest["files"]["distill_w1.npy"]
    assert main(["export", str(run), "-o", str(tmp_path / "p.onnx")]) == 0 and (tmp_path / "p.onnx").is_file()
    assert main(["export", str(run), "--bundle", str(tmp_path / "p.onnx")]) == 2  # a file is no bundle folder
    assert "--bundle" in capsys.readouterr().err


def test_rewriting_a_bundle_is_atomic_and_foreign_folders_are_refused(device_run, tmp_path: Path) -> None:
    run = device_run["run"]
    out = _copy(device_run["bundle"], tmp_path)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    broken = tmp_path / "broken-run"
    shutil.copytree(run, broken, ignore=shutil.ignore_patterns("*.zip"))  # no model left to export
    with pytest.raises(FileNotFoundError, match="model.zip"):  # fails inside the bundle's temporary folder
        write_bundle(broken, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old bundle is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken-run", "copy"]  # no temporary folder left
    assert write_bundle(run, out) == out and load_bundle(out).manifest["files"] == read_json(out / MANIFEST)["files"]
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match=r"--bundle .*mine: folder holds files and is not a device bundle"):
        write_bundle(run, foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_a_run_without_a_spec_is_refused_with_the_reason(device_run, tmp_path: Path) -> None:
    old = tmp_path / "old-run"
    shutil.copytree(device_run["run"], old)
    info = read_json(old / "train.json")
    del info["observation_spec"]
    write_json(old / "train.json", info)
    with pytest.raises(ValueError, match=r"train.json lacks 'observation_spec' \(written by older code\)"):
        write_bundle(old, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_missing_or_altered_files_and_other_versions_are_refused(device_run, tmp_path: Path) -> None:
    b = _copy(device_run["bundle"], tmp_path)
    (b / "distill_w0.npy").unlink()
    with pytest.raises(BundleError, match=r"distill_w0.npy: missing from the bundle"):
        DeviceController.from_bundle(b)
    shutil.rmtree(b)
    b = _copy(device_run["bundle"], tmp_path)
    w = np.load(b / "embed_components.npy")
    w[0, 0] += 1e-3
    np.save(b / "embed_components.npy", w)
    with pytest.raises(BundleError, match=r"embed_components.npy: SHA-256 [0-9a-f]{64} differs from the manifest's"):
        load_bundle(b)
    shutil.rmtree(b)
    b = _copy(device_run["bundle"], tmp_path)
    m = read_json(b / MANIFEST)
    write_json(b / MANIFEST, {**m, "format_version": 2})
    with pytest.raises(BundleError, match=r"manifest.json: format_version 2; this code reads device bundle format 1"):
        load_bundle(b)
    write_json(b / MANIFEST, {**m, "observation_spec": {**m["observation_spec"], "max_queue": None}})
    with pytest.raises(BundleError, match=r"observation_spec: field 'max_queue' must be an integer"):
        load_bundle(b)
    with pytest.raises(BundleError, match=r"manifest.json: missing; .* is not a device bundle"):
        load_bundle(tmp_path)


def test_policies_must_observe_the_spec_and_frames_must_match_the_capture(device_run, tmp_path: Path) -> None:
    bundle = device_run["bundle"]
    onnx_path = tmp_path / "other.onnx"
    model = onnx.load(str(bundle / "policy.onnx"))
    for p in model.metadata_props:
        if p.key == "observation_fields":
            fields = json.loads(p.value)
            p.value = json.dumps([*fields[:-1], "cos_something_else"])
    onnx.save(model, str(onnx_path))
    with pytest.raises(ValueError, match=r"not in the spec: \['cos_something_else'\]; missing: \['cos_cache'\]"):
        DeviceController.from_bundle(bundle, policy=OnnxPolicy(onnx_path))
    ctl = DeviceController.from_bundle(bundle, policy=ConstantPolicy(0, "local"))
    with pytest.raises(ValueError, match=r"frame shape is \(336, 447, 3\), expected an RGB uint8 array of shape "
                                         r"\(336, 448, 3\) \(the bundle's capture size 448x336\)"):
        ctl.step(np.zeros((336, 447, 3), np.uint8), 0.0)
    with pytest.raises(TypeError, match=r"frame dtype is float32, expected an RGB uint8 array"):
        ctl.step(np.zeros((336, 448, 3), np.float32), 0.0)
    with pytest.raises(TypeError, match="frame must be an RGB uint8 array"):
        ctl.step([[0]], 0.0)


def test_numpy_heuristics_deploy_like_the_learned_policy(device_run) -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (336, 448, 3), dtype=np.uint8)
    for policy in (CBOPolicy(np.array([0.58, 0.71, 0.76, 0.76]), 0.78, tau=0.05, margin=0.1),
                   CBOCondPolicy(tau=0.0, margin=0.1), CacheNetPolicy(min_cos=0.9, max_age_s=2.0)):
        ctl = DeviceController.from_bundle(device_run["bundle"], policy=policy)
        ctl.reset(10.0)
        d = ctl.step(frame, 10.0)
        assert d.action == int(policy.act(d.observation[None])[0])
        assert (d.jpeg is None) == (d.ticket is None)
        assert set(d.seconds) == {"student", "features", "policy"}

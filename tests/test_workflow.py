"""The research workflow (issue #15) on tiny inputs: cross-dataset test traces, several training seeds, sweeps,
and bad input failing before any work with the flag named and nothing written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import train_agent
from agents.evaluation import seed_stats, t_quantile_975
from agents.workflow import group_runs
from bandwidth_traces import Trace, load_traces, split
from offload_common.cli import parse_seeds


def _cooked(path: Path, mean: float, seed: int, n: int = 40) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    mbps = np.abs(rng.normal(mean, mean / 3, n)) + 0.05
    path.write_text("".join(f"{t:.1f}\t{v:.4f}\n" for t, v in zip(np.arange(n, dtype=float), mbps)))


def _mahimahi(path: Path, packets_per_s: float, seed: int, seconds: int = 30) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    stamps = np.sort(rng.integers(0, seconds * 1000, int(packets_per_s * seconds)))
    path.write_text("".join(f"{ms}\n" for ms in stamps))


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Training traces (two cooked families of 3) and a test set: a cooked family of 2 (one of them a renamed
    copy of a trace on the training side of the split), a Mahimahi family of one uplink (plus its downlink, to be
    skipped)."""
    root = tmp_path_factory.mktemp("traces")
    for i in range(3):
        _cooked(root / "train" / "wifi" / f"w{i}", 1.2, i)
        _cooked(root / "train" / "hsdpa" / f"h{i}", 0.7, 10 + i)
    _cooked(root / "test" / "lte" / "l0", 2.0, 20)
    train_side, _ = split(load_traces(root / "train"))  # the main job's split of --traces
    tuned = next(t for t in train_side if t.family == "wifi")
    (root / "test" / "lte" / "copy_of_tuned").write_text(Path(tuned.source).read_text())
    _mahimahi(root / "test" / "cell" / "Op-LTE.up", 90, 30)
    _mahimahi(root / "test" / "cell" / "Op-LTE.down", 300, 31)
    return {"train": root / "train", "test": root / "test", "copied": f"wifi/{tuned.name}"}


def _exit_code(argv: list[str]) -> int:
    try:
        return train_agent.main(argv)
    except SystemExit as exc:  # argparse rejects a flag's value with exit status 2
        return int(exc.code)


# ---- cross-dataset test traces -------------------------------------------------------------------------------------

def test_test_traces_are_all_test_and_never_tuned_on(traces: dict[str, Path], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import agents.evaluation.suite as suite

    tuned_on: list[list[str]] = []
    real_scorer = suite.training_scorer

    def spy(setup, *a, **k):
        tuned_on.append([f"{t.family}/{t.name}" for t in setup.train_traces])
        return real_scorer(setup, *a, **k)

    monkeypatch.setattr(suite, "training_scorer", spy)
    out = tmp_path / "cross"
    code = train_agent.main(["evaluate", "--traces", str(traces["train"]), "--test-traces", str(traces["test"]),
                             "--policies", "local,cbo,oracle", "--episodes", "1", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    meta = json.loads((out / "report_meta.json").read_text())
    # families are the test folders; the Mahimahi downlink is skipped; every test file is evaluated
    assert set(report["cbo"]) == {"lte", "cell", "all"}
    assert report["cbo"]["lte"]["episodes"] == 2 and report["cbo"]["cell"]["episodes"] == 1
    assert meta["run"]["test_traces"] == 3 and meta["test_side"]["test_families"] == {"cell": 1, "lte": 2}
    # the renamed copy of a training trace is a test trace, so it was removed from the tuning set
    assert tuned_on and all(traces["copied"] not in names for names in tuned_on)
    assert all(not any(n.startswith(("lte/", "cell/")) for n in names) for names in tuned_on)
    assert meta["test_side"]["removed_from_tuning"] == [traces["copied"]]
    # the one-trace family carries a warning: printed, in report.md, report.json and report_meta.json
    assert "family cell has a single test trace" in capsys.readouterr().err
    assert "## Warnings" in (out / "report.md").read_text() and "family cell" in (out / "report.md").read_text()
    assert "not a meaningful interval" in report["cbo"]["cell"]["warning"] and "warning" not in report["cbo"]["lte"]
    assert any("family cell" in w for w in meta["warnings"])
    assert report["local"]["all"]["accuracy"] <= report["oracle"]["all"]["accuracy"]


@pytest.mark.parametrize("case", ["missing", "empty", "unparsable", "downlink-only"])
def test_unusable_test_traces_fail_first_naming_the_flag(case: str, tmp_path: Path, traces: dict[str, Path],
                                                          capsys) -> None:
    target = tmp_path / "given"
    if case != "missing":
        target.mkdir()
    if case == "unparsable":
        (target / "t1").write_text("0.0 1.0 2.0\n1.0 2.0 3.0\n")
    if case == "downlink-only":
        _mahimahi(target / "x.down", 100, 0)
    out = tmp_path / "out"
    code = _exit_code(["evaluate", "--traces", str(traces["train"]), "--test-traces", str(target),
                       "--policies", "cbo", "--episodes", "1", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert "--test-traces" in err and str(target) in err and "cooked" in err and "Mahimahi" in err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# ---- seeds -----------------------------------------------------------------------------------------------------

def test_seed_list_parsing_and_student_t() -> None:
    assert parse_seeds("0,1, 2") == [0, 1, 2]
    for bad in ("", "0,,1", "a", "-1", "1,1", "1.5"):
        with pytest.raises(ValueError):
            parse_seeds(bad)
    stats = seed_stats([0.70, 0.72, 0.74])
    assert stats["mean"] == pytest.approx(0.72) and stats["min"] == 0.70 and stats["max"] == 0.74
    half = 4.3027 * 0.02 / math.sqrt(3)  # t_{0.975, 2} * sd / sqrt(n)
    assert stats["ci95"] == pytest.approx([0.72 - half, 0.72 + half], abs=1e-4)
    assert math.isnan(seed_stats([0.7])["ci95"][0])
    scipy_stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 5, 29, 30, 31, 45, 200):
        assert t_quantile_975(df) == pytest.approx(scipy_stats.t.ppf(0.975, df), abs=2e-4), df


@pytest.mark.parametrize("command", ["run", "train"])
@pytest.mark.parametrize("seeds", ["0,,1", "a", "-1", "0,1,0", ""])
def test_malformed_seeds_exit_2_before_anything(command: str, seeds: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "runs"
    assert _exit_code([command, "--seeds", seeds, "--timesteps", "256", "--out", str(out)]) == 2
    assert "--seeds" in capsys.readouterr().err
    assert not out.exists()


def _fake_run(folder: Path, seed: int, timesteps: int = 256) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(
        {"command": ["train_agent.py", "train", "--seed", str(seed)], "framework": "sb3", "seed": seed,
         "traces": "x", "train_config": {"algo": "ppo", "seed": seed, "timesteps": timesteps}}))
    return folder


def test_runs_that_differ_only_in_seed_are_one_method(tmp_path: Path) -> None:
    a, b = _fake_run(tmp_path / "s" / "seed0", 0), _fake_run(tmp_path / "s" / "seed1", 1)
    other = _fake_run(tmp_path / "longer", 0, timesteps=512)
    named, groups = group_runs([b, other, a])
    assert [n for _, n in named] == ["ppo-seed1", "longer", "ppo-seed0"]
    assert len(groups) == 1 and groups[0].seeds == (0, 1) and groups[0].name == "ppo (2 seeds)"
    twin = _fake_run(tmp_path / "t" / "seed0", 0)
    with pytest.raises(ValueError, match="--runs"):
        group_runs([a, b, twin])  # two runs of one config and seed: one seed would count twice
    with pytest.raises(ValueError, match="more than once"):
        group_runs([a, a])


def _one_thread(experiment):
    """``train_agent._experiment`` with one torch thread (tiny nets on a shared 2-core box train faster)."""
    from dataclasses import replace

    def patched(args):
        exp = experiment(args)
        return replace(exp, train=exp.train.replace(threads=1))

    return patched


@pytest.fixture(scope="module")
def seeds_run(traces: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``run --seeds 0,1`` on the tiny traces: two short trainings and one report (the module's slow part). From
    scratch (``--warm-start none``), so that ``train --seeds``, which tunes no teacher, must reproduce its runs."""

    out = tmp_path_factory.mktemp("seeds") / "ppo-seeds"
    with pytest.MonkeyPatch.context() as mp:  # one torch thread: tiny nets on a shared 2-core box run faster
        mp.setattr(train_agent, "_experiment", _one_thread(train_agent._experiment))
        assert train_agent.main(["run", "--seeds", "0,1", "--timesteps", "128", "--n-envs", "1", "--episodes", "1",
                                 "--warm-start", "none", "--traces", str(traces["train"]), "--out", str(out),
                                 "--no-progress"]) == 0
    return out


@pytest.mark.slow  # tunes every reference on the tiny traces before its short training (~90 s)
def test_run_warm_start_clones_the_reference_it_tuned(traces: dict[str, Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "bc"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_agent, "_experiment", _one_thread(train_agent._experiment))
        assert train_agent.main(["run", "--warm-start", "cachenet", "--timesteps", "128", "--n-envs", "1",
                                 "--episodes", "1", "--traces", str(traces["train"]), "--out", str(out),
                                 "--no-progress"]) == 0
    info = json.loads((out / "train.json").read_text())
    assert info["train_config"]["warm_start"] == "cachenet"
    assert info["warm_start"]["teacher"] == "cachenet" and info["warm_start"]["agreement"] > 0.5
    assert json.loads((out / "config.json").read_text())["train_config"]["warm_start"] == "cachenet"
    # train tunes nothing, so it has no teacher to clone: the flag is run's only
    code = _exit_code(["train", "--warm-start", "cachenet", "--traces", str(traces["train"]),
                       "--out", str(tmp_path / "t")])
    assert code == 2 and "--warm-start" in capsys.readouterr().err and not (tmp_path / "t").exists()


@pytest.mark.parametrize("argv,want", [(["run"], "learned-greedy"), (["run", "--algo", "a2c"], "learned-greedy"),
                                       (["run", "--algo", "dqn"], "none"), (["run", "--warm-start", "none"], "none"),
                                       (["train", "--algo", "recurrent-ppo"], "none"),
                                       (["run", "--warm-start", "cachenet"], "cachenet"), (["train"], "none")])
def test_the_main_job_warm_starts_its_actor_critics_from_learned_greedy(argv: list[str], want: str) -> None:
    args = train_agent.build_parser().parse_args(argv)
    args.command = ["train_agent.py", *argv]
    assert train_agent._experiment(args).train.warm_start == want


@pytest.mark.parametrize("argv,want", [(["run"], (0.25, 0.5, 1.0, 2.0, 4.0)), (["train"], (0.25, 0.5, 1.0, 2.0, 4.0)),
                                       (["train", "--framework", "rllib"], (1.0,)),
                                       (["run", "--train-bandwidth-scales", "1"], (1.0,)),
                                       (["train", "--train-bandwidth-scales", "0.5,2"], (0.5, 2.0))])
def test_sb3_runs_train_over_a_mixture_of_speeds_unless_told(argv: list[str], want: tuple[float, ...]) -> None:
    args = train_agent.build_parser().parse_args(argv)
    args.command = ["train_agent.py", *argv]
    assert train_agent._experiment(args).train.bandwidth_scales == want


def test_run_refuses_a_recurrent_policy_it_could_not_export(tmp_path: Path) -> None:
    from agents.training import TrainConfig
    from agents.workflow import Experiment, Inputs, run_experiment

    exp = Experiment(Inputs(traces="embedded"), TrainConfig(algo="recurrent-ppo"), out=tmp_path / "r")
    with pytest.raises(ValueError, match="train --algo recurrent-ppo"):
        run_experiment(exp)
    assert not (tmp_path / "r").exists()


def test_train_refuses_a_warm_start_it_cannot_tune(tmp_path: Path) -> None:
    from agents.training import TrainConfig
    from agents.workflow import Experiment, Inputs, train_runs

    exp = Experiment(Inputs(traces="embedded"), TrainConfig(warm_start="cachenet"), out=tmp_path / "t")
    with pytest.raises(ValueError, match="use `run --warm-start cachenet`"):
        train_runs(exp)
    assert not (tmp_path / "t").exists()


def test_run_seeds_reports_per_seed_and_across_seed(seeds_run: Path) -> None:
    report = json.loads((seeds_run / "report.json").read_text())
    meta = json.loads((seeds_run / "report_meta.json").read_text())
    for seed in (0, 1):
        run = seeds_run / f"seed{seed}"
        assert json.loads((run / "config.json").read_text())["seed"] == seed
        assert (run / "best_model.zip").is_file() and (run / "policy.onnx").is_file()
    best = meta["best_heuristic"]
    assert best in ("cbo", "cbo+teacher", "cbo-cond", "cachenet", "learned-greedy")
    across = report["ppo (2 seeds)"]
    for fam in ("wifi", "hsdpa", "all"):
        per = [report[f"ppo-seed{s}"][fam]["accuracy"] for s in (0, 1)]
        e = across[fam]
        assert e["accuracy_per_seed"] == per and e["accuracy"] == pytest.approx(np.mean(per))
        assert e["accuracy_min"] == min(per) and e["accuracy_max"] == max(per)
        half = 12.7062 * np.std(per, ddof=1) / math.sqrt(2)
        assert e["accuracy_ci95"] == pytest.approx([np.mean(per) - half, np.mean(per) + half], abs=1e-6)
        # each seed's paired difference is computed on the heuristics' very episodes
        ref = np.array(report[best][fam]["episode_accuracy"])
        diffs = [float(np.mean(np.array(report[f"ppo-seed{s}"][fam]["episode_accuracy"]) - ref)) for s in (0, 1)]
        vs = e["vs_best_heuristic"]
        assert vs["reference"] == best
        assert [p["difference"] for p in vs["per_seed"]] == pytest.approx(diffs, abs=1e-4)
        assert vs["difference"] == pytest.approx(np.mean(diffs), abs=1e-4)
    md = (seeds_run / "report.md").read_text()
    assert "## Across training seeds" in md and "| ppo-seed0 |" in md and "| ppo-seed1 |" in md
    assert meta["across_seeds"]["ppo (2 seeds)"]["all"]["seeds"] == [0, 1]


def test_evaluate_groups_seed_runs_on_the_same_episodes(seeds_run: Path, traces: dict[str, Path],
                                                        tmp_path: Path) -> None:
    out = tmp_path / "ev"
    assert train_agent.main(["evaluate", "--traces", str(traces["train"]), "--policies", "local,cbo,cachenet",
                             "--episodes", "1", "--runs", str(seeds_run / "seed1"), str(seeds_run / "seed0"),
                             "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    run_report = json.loads((seeds_run / "report.json").read_text())
    # same traces, seed and episodes as the run's report: the learned policies' results are identical
    for name in ("ppo-seed0", "ppo-seed1"):
        assert report[name]["all"]["episode_accuracy"] == run_report[name]["all"]["episode_accuracy"]
    assert report["ppo (2 seeds)"]["all"]["accuracy"] == pytest.approx(run_report["ppo (2 seeds)"]["all"]["accuracy"])
    assert "## Across training seeds" in (out / "report.md").read_text()


def test_train_seeds_writes_runs_only_and_refuses_to_overwrite(seeds_run: Path, traces: dict[str, Path],
                                                              capsys) -> None:
    # a seeds folder whose seed runs exist needs --resume or --force: refused before anything is loaded
    before = sorted(p.name for p in seeds_run.iterdir())
    code = _exit_code(["train", "--seeds", "0,1", "--timesteps", "256", "--traces", str(traces["train"]),
                       "--out", str(seeds_run)])
    assert code == 2 and "--resume" in capsys.readouterr().err
    assert sorted(p.name for p in seeds_run.iterdir()) == before


def test_train_seeds_reproduces_the_run_seeds_policy(seeds_run: Path, traces: dict[str, Path],
                                                     tmp_path: Path) -> None:

    import torch

    from agents.training import load_model

    out = tmp_path / "again"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_agent, "_experiment", _one_thread(train_agent._experiment))
        assert train_agent.main(["train", "--seeds", "1", "--timesteps", "128", "--n-envs", "1",
                                 "--traces", str(traces["train"]), "--out", str(out), "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["seed1"]  # the runs only: no report
    again = load_model(out / "seed1" / "best_model.zip").policy.state_dict()
    first = load_model(seeds_run / "seed1" / "best_model.zip").policy.state_dict()
    assert again.keys() == first.keys() and all(torch.equal(again[k], first[k]) for k in first)


# ---- sweep ---------------------------------------------------------------------------------------------------------

def test_trace_scaled_scales_throughput_only() -> None:
    t = Trace("a", "fam", np.array([0.0, 1.0]), np.array([1.0, 3.0]), 2.0)
    half = t.scaled(0.5)
    assert half.mean_mbps == pytest.approx(t.mean_mbps / 2) and (half.name, half.family) == ("a", "fam")
    assert half.transfer_time(0.0, 62_500) == pytest.approx(2 * t.transfer_time(0.0, 62_500)) == pytest.approx(1.0)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            t.scaled(bad)


def test_sweep_one_entry_per_point_and_policy(traces: dict[str, Path], seeds_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    assert train_agent.main(["sweep", "--traces", str(traces["train"]), "--bandwidth-scales", "0.25,1",
                             "--deadlines-ms", "100,200", "--policies", "local,cbo,oracle", "--episodes", "1",
                             "--runs", str(seeds_run / "seed0"), str(seeds_run / "seed1"),
                             "--out", str(out)]) == 0
    payload = json.loads((out / "sweep.json").read_text())
    policies = {"local", "cbo", "oracle", "ppo-seed0", "ppo-seed1", "ppo (2 seeds)"}
    keys = [(e["axis"], e["value"], e["policy"]) for e in payload["entries"]]
    assert len(keys) == len(set(keys)) == 2 * 2 * len(policies)
    assert {k[2] for k in keys} == policies
    # three distinct points (x1 at 200 ms lies on both axes and is computed once), each re-tuning cbo
    assert len(payload["points"]) == 3 and all("cbo" in p["tuning"] for p in payload["points"])
    acc = {k: e["accuracy"] for k, e in zip(keys, payload["entries"])}
    mb = {k: e["mb_per_frame"] for k, e in zip(keys, payload["entries"])}
    assert acc[("bandwidth_scale", 0.25, "local")] == acc[("bandwidth_scale", 1.0, "local")]  # no network used
    assert mb[("bandwidth_scale", 1.0, "local")] == 0
    assert acc[("bandwidth_scale", 1.0, "cbo")] == acc[("deadline_ms", 200.0, "cbo")]  # the shared point
    seed_mean = np.mean([acc[("deadline_ms", 100.0, f"ppo-seed{s}")] for s in (0, 1)])
    assert acc[("deadline_ms", 100.0, "ppo (2 seeds)")] == pytest.approx(seed_mean)
    for axis in ("bandwidth_scale", "deadline_ms"):
        assert acc[(axis, payload["axes"][axis][0], "oracle")] >= acc[(axis, payload["axes"][axis][0], "local")]
        assert (out / f"sweep_{axis}.png").stat().st_size > 10_000
    # every learned entry is paired with the point's best re-tuned reference (here cbo, the only heuristic);
    # per-episode accuracies are stored rounded, hence the tolerance
    vs = {k: e["versus_best"] for k, e in zip(keys, payload["entries"]) if "versus_best" in e}
    assert {k[2] for k in vs} == {"ppo-seed0", "ppo-seed1", "ppo (2 seeds)"} and len(vs) == 2 * 2 * 3
    for (axis, value, pol), v in vs.items():
        assert v["reference"] == "cbo"
        if pol != "ppo (2 seeds)":  # same episodes: the mean of paired differences is the difference of means
            assert v["difference"] == pytest.approx(acc[(axis, value, pol)] - acc[(axis, value, "cbo")], abs=1e-4)
            lo, hi = v["difference_ci95"]
            assert lo <= v["difference"] <= hi
        else:
            per_seed = [vs[(axis, value, f"ppo-seed{s}")]["difference"] for s in (0, 1)]
            assert v["difference_per_seed"] == per_seed and v["difference"] == pytest.approx(np.mean(per_seed))
    md = (out / "sweep.md").read_text()
    assert "re-tuned at every point" in md and "| ppo (2 seeds) |" in md
    # where each learned run was trained, from its config.json: the CLI's default mixture of speeds here
    from agents.training import MIXED_BANDWIDTH_SCALES

    assert payload["trained_at"] == {f"ppo-seed{s}": {"bandwidth_scales": list(MIXED_BANDWIDTH_SCALES),
                                                      "deadline_ms": 200.0} for s in (0, 1)}
    assert "Learned policies were trained at: ppo-seed0, bandwidth x0.25, 0.5, 1, 2, 4 and 200 ms;" in md
    assert "minus the best re-tuned reference" in md and "| (best reference at the point) | cbo | cbo |" in md
    # the run's own report (x1, 200 ms, same episodes) agrees with the sweep's shared point
    run_report = json.loads((seeds_run / "report.json").read_text())
    assert acc[("deadline_ms", 200.0, "ppo-seed0")] == pytest.approx(run_report["ppo-seed0"]["all"]["accuracy"])


@pytest.mark.parametrize("flag,value", [("--bandwidth-scales", ""), ("--bandwidth-scales", "0,1"),
                                        ("--bandwidth-scales", "-0.5"), ("--bandwidth-scales", "x"),
                                        ("--bandwidth-scales", "1,,2"), ("--deadlines-ms", "0"),
                                        ("--deadlines-ms", "100,100"), ("--deadlines-ms", "inf")])
def test_bad_sweep_ranges_exit_2_naming_the_flag(flag: str, value: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "sweep"
    assert _exit_code(["sweep", flag, value, "--out", str(out)]) == 2
    assert flag in capsys.readouterr().err
    assert not out.exists()


def test_train_seeds_as_ray_tasks_reproduces_the_serial_runs(seeds_run: Path, traces: dict[str, Path],
                                                             tmp_path: Path) -> None:
    """``--address local``: one Ray task per seed on a loopback Ray gives the very runs the serial loop trained."""
    import ray
    import torch

    from agents.training import load_model

    out = tmp_path / "on-ray"
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(train_agent, "_experiment", _one_thread(train_agent._experiment))
            assert train_agent.main(["train", "--seeds", "0,1", "--timesteps", "128", "--n-envs", "1",
                                     "--traces", str(traces["train"]), "--out", str(out), "--no-progress",
                                     "--address", "local"]) == 0
    finally:
        ray.shutdown()
    for seed in (0, 1):
        got = load_model(out / f"seed{seed}" / "best_model.zip").policy.state_dict()
        want = load_model(seeds_run / f"seed{seed}" / "best_model.zip").policy.state_dict()
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want), seed


def test_sweep_as_ray_tasks_equals_the_serial_sweep(traces: dict[str, Path], seeds_run: Path,
                                                     tmp_path: Path) -> None:
    """``sweep --address local``: one Ray task per point (inputs and runs reloaded on the worker) gives the serial
    sweep's entries exactly."""
    import ray

    args = ["sweep", "--traces", str(traces["train"]), "--bandwidth-scales", "0.5,1", "--deadlines-ms", "200",
            "--policies", "local,cbo", "--episodes", "1", "--runs", str(seeds_run / "seed0")]
    assert train_agent.main([*args, "--out", str(tmp_path / "serial")]) == 0
    try:
        assert train_agent.main([*args, "--out", str(tmp_path / "ray"), "--address", "local"]) == 0
    finally:
        ray.shutdown()
    serial, on_ray = (json.loads((tmp_path / d / "sweep.json").read_text()) for d in ("serial", "ray"))
    assert serial["entries"] == on_ray["entries"] and len(serial["entries"]) == 3 * 3
    assert [p["tuning"]["cbo"]["params"] for p in serial["points"]] == \
        [p["tuning"]["cbo"]["params"] for p in on_ray["points"]]

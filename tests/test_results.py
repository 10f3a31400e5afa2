"""The README states what results/ holds: its numbers are rendered from recorded JSON, and a stale one fails."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import train_agent
from agents.workflow import results

ROOT = Path(__file__).resolve().parents[1]


def test_readme_states_what_results_holds() -> None:
    stale = results.check_readme(ROOT / "README.md", ROOT / "results")
    assert stale == [], f"README blocks {stale} are stale: run `train_agent.py results --update`"
    assert train_agent.main(["results", "--check"]) == 0


def test_every_results_file_names_its_command_and_commit() -> None:
    files = sorted((ROOT / "results").glob("*.json"))
    assert files, "results/ holds no recorded results"
    for path in files:
        payload = json.loads(path.read_text())
        assert payload["format"] == results.FORMAT and payload["name"] == path.stem, path
        assert payload["command"] and all(isinstance(a, str) for a in payload["command"]), path
        assert payload["code"]["commit"] and len(payload["code"]["commit"]) == 40, path


def _tiny_results(tmp_path: Path, diff: float, lo: float, hi: float) -> Path:
    """A hand-made main job's results: local, cachenet, ppo and the oracle on two families."""
    def metrics(acc: float) -> dict:
        return {"accuracy": acc, "accuracy_ci95": [acc - 0.01, acc + 0.01], "episodes": 4, "mb_per_frame": 0.001,
                "action_mix": {"local": 0.5, "offload@160": 0.2, "reuse": 0.3}}

    report = {name: {"a": metrics(acc), "all": metrics(acc)} for name, acc in
              (("local", 0.6), ("cachenet", 0.7), ("ppo", 0.7 + diff), ("oracle", 0.9))}
    pair = {"difference": diff, "difference_ci95": [lo, hi], "gap_closed": diff / 0.2}
    meta = {"best_heuristic": "cachenet", "policies": {"ppo": {"framework": "sb3"}},
            "paired_vs_best_heuristic": {"ppo": {"a": pair, "all": pair}},
            "run": {"test_traces": 2, "episodes_per_trace": 2, "total_seconds": 75.0, "env_config": {}}}
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "main.json").write_text(json.dumps({
        "format": results.FORMAT, "name": "main", "command": ["train_agent.py"], "code": {"commit": "ab" * 20},
        "kind": "report", "report": report, "meta": meta}))
    return folder


def test_claim_wording_follows_the_interval(tmp_path: Path) -> None:
    folder = _tiny_results(tmp_path, 0.004, -0.002, 0.010)
    text = results.block_main_claim(folder)
    assert "+0.004 [-0.002, +0.010]" in text and "**not** significant" in text and "win" not in text
    assert "The target margin of +0.030 overall is **not met**." in text
    shutil.rmtree(folder)
    folder = _tiny_results(tmp_path, 0.030, 0.020, 0.040)
    text = results.block_main_claim(folder)
    assert "+0.030 [+0.020, +0.040] overall (a significant win, 15% of the cachenet-to-oracle gap)" in text
    assert "The target margin of +0.030 overall is met." in text
    shutil.rmtree(folder)
    folder = _tiny_results(tmp_path, -0.02, -0.03, -0.01)
    assert "a significant loss" in results.block_main_claim(folder)


def test_table_bolds_the_best_deployable_policy(tmp_path: Path) -> None:
    table = results.block_main_table(_tiny_results(tmp_path, 0.03, 0.02, 0.04))
    assert "| ppo | **0.730 [0.720, 0.740]** |" in table
    assert "| oracle (reference, not deployable) | 0.900" in table  # the oracle is never bold
    assert "| local | 0.600 [0.590, 0.610] | 0.600 [0.590, 0.610] | 0.0010 | 50% local, 30% reuse, 20% offloads |" \
        in table
    assert "1 min 15 s" in table and "`abababab" in table


def test_sweep_block_pairs_every_point_with_its_best_reference(tmp_path: Path) -> None:
    def entry(scale: float, deadline: float, policy: str, acc: float, versus: dict | None = None) -> dict:
        e = {"axis": "bandwidth_scale", "value": scale, "policy": policy, "bandwidth_scale": scale,
             "deadline_ms": deadline, "accuracy": acc, "kind": "learned, across seeds" if versus else "heuristic"}
        return {**e, "versus_best": versus} if versus else e

    def versus(ref: str, d: float, lo: float, hi: float) -> dict:
        return {"reference": ref, "difference": d, "difference_ci95": [lo, hi], "difference_per_seed": [d, d]}

    entries = [entry(0.5, 200.0, "cachenet", 0.70), entry(0.5, 200.0, "ppo (2 seeds)", 0.69,
                                                          versus("cachenet", -0.01, -0.02, -0.005)),
               entry(1.0, 200.0, "learned-greedy", 0.74), entry(1.0, 200.0, "ppo (2 seeds)", 0.75,
                                                                versus("learned-greedy", 0.01, -0.01, 0.03))]
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "sweep.json").write_text(json.dumps({
        "format": results.FORMAT, "name": "sweep", "command": ["train_agent.py", "sweep"],
        "code": {"commit": "cd" * 20}, "kind": "sweep",
        "sweep": {"entries": entries, "baseline": {"bandwidth_scale": 1.0, "deadline_ms": 200.0},
                  "run": {"test_traces": 3, "episodes_per_trace": 2, "total_seconds": 61.0}}}))
    text = results.block_sweep(folder)
    assert "| 0.5 | 200 | cachenet (0.700) | -0.010 [-0.020, -0.005] (-0.010, -0.010) |" in text
    assert "| 1 | 200 | learned-greedy (0.740) | +0.010 [-0.010, +0.030] (+0.010, +0.010) |" in text
    assert ("ppo (2 seeds) is at or above the best re-tuned reference at 1 of 2 points (its interval above 0 at 0, "
            "below 0 at 1); the target of >= 0 at every point is **not met**.") in text
    assert "1 min 1 s" in text and "`cdcdcdcd" in text
    # a sweep recorded before trained_at existed compared runs trained at x1
    assert "the learned policy is the one trained at bandwidth x1 and 200 ms, used as trained." in text


def _seeds_and_sweep(folder: Path, suffix: str, scales: list[float], at_x1: float, worst: float,
                     deadlines: list[float] | None = None, rounds: int = 0, per_speed: bool = False) -> None:
    """Hand-made records of ``run --seeds 0,1`` and of its sweep over two points (x1 and x4)."""
    per_seed = [{"seed": 0, "difference": at_x1 - 0.002}, {"seed": 1, "difference": at_x1 + 0.002}]
    meta = {"across_seeds": {"ppo (2 seeds)": {"all": {"vs_best_heuristic": {
        "reference": "learned-greedy", "difference": at_x1, "difference_ci95": [at_x1 - 0.01, at_x1 + 0.01],
        "per_seed": per_seed}}}},
            "run": {"runs": {f"ppo-seed{s}": {"train_seconds": 100.0 + 10 * s + 100 * (len(scales) > 1)}
                             for s in (0, 1)}}}
    (folder / f"seeds{suffix}.json").write_text(json.dumps({
        "format": results.FORMAT, "name": f"seeds{suffix}", "command": ["train_agent.py", "run", "--seeds", "0,1"],
        "code": {"commit": "12" * 20}, "kind": "report", "report": {}, "meta": meta}))

    def entry(scale: float, d: float) -> dict:
        return {"axis": "bandwidth_scale", "value": scale, "policy": "ppo (2 seeds)", "kind": "learned, across seeds",
                "bandwidth_scale": scale, "deadline_ms": 200.0, "accuracy": 0.75, "policies": ["ppo-seed0", "ppo-seed1"],
                "versus_best": {"reference": "learned-greedy", "difference": d, "difference_ci95": [d - 0.005, d + 0.005]}}

    sweep = {"entries": [entry(1.0, at_x1), entry(4.0, worst)], "baseline": {"bandwidth_scale": 1.0, "deadline_ms": 200.0},
             "run": {}}
    if scales != [1.0]:
        sweep["trained_at"] = {f"ppo-seed{s}": {"bandwidth_scales": scales, "deadline_ms": 200.0,
                                                **({"deadlines_ms": deadlines} if deadlines else {}),
                                                **({"curriculum_rounds": rounds} if rounds else {}),
                                                **({"warm_start_per_scale": True} if per_speed else {})}
                              for s in (0, 1)}
    (folder / f"sweep{suffix}.json").write_text(json.dumps({
        "format": results.FORMAT, "name": f"sweep{suffix}", "command": ["train_agent.py", "sweep"],
        "code": {"commit": "34" * 20}, "kind": "sweep", "sweep": sweep}))


def test_training_conditions_block_sets_the_mixtures_beside_x1(tmp_path: Path) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    _seeds_and_sweep(folder, "-x1", [1.0], 0.011, -0.021)
    _seeds_and_sweep(folder, "", [0.5, 1.0, 2.0], 0.014, 0.003)
    _seeds_and_sweep(folder, "-deadlines", [0.5, 1.0, 2.0], 0.011, 0.001, [100.0, 400.0])
    _seeds_and_sweep(folder, "-curriculum", [0.5, 1.0, 2.0], 0.008, -0.002, rounds=3)
    _seeds_and_sweep(folder, "-teacher-per-speed", [0.5, 1.0, 2.0], 0.012, 0.004, per_speed=True)
    for name, diff in (("fcc-to-norway-x1", 0.022), ("fcc-to-norway", 0.018)):
        pair = {"difference": diff, "difference_ci95": [diff - 0.005, diff + 0.005]}
        (folder / f"{name}.json").write_text(json.dumps({
            "format": results.FORMAT, "name": name, "command": ["train_agent.py", "evaluate"],
            "code": {"commit": "56" * 20}, "kind": "report", "report": {},
            "meta": {"best_heuristic": "cachenet", "policies": {"cachenet": {"name": "cachenet"},
                                                                 "fcc-ppo": {"framework": "sb3"}},
                     "paired_vs_best_heuristic": {"cachenet": pair, "fcc-ppo": {"all": pair}}}}))
    text = results.block_training_speeds(folder)
    assert ("| bandwidth x1 and 200 ms | 105 | +0.011 [+0.001, +0.021] against learned-greedy | +0.009, +0.013 | 1 of 2 | "
            "1 / 1 | x4, 200 ms: -0.021 [-0.026, -0.016] against learned-greedy |") in text
    assert ("| bandwidth x0.5, 1, 2 and 200 ms | 205 | +0.014 [+0.004, +0.024] against learned-greedy | +0.012, +0.016 | "
            "2 of 2 | 1 / 0 | x4, 200 ms: +0.003 [-0.002, +0.008] against learned-greedy |") in text
    assert ("| bandwidth x0.5, 1, 2 and 100, 400 ms | 205 | +0.011 [+0.001, +0.021] against learned-greedy | +0.009, "
            "+0.013 | 2 of 2 | 1 / 0 | x4, 200 ms: +0.001 [-0.004, +0.006] against learned-greedy |") in text
    assert ("| bandwidth x0.5, 1, 2 and 200 ms, a curriculum of 3 rounds | 205 | +0.008 [-0.002, +0.018] against "
            "learned-greedy | +0.006, +0.010 | 1 of 2 | 1 / 0 | x4, 200 ms: -0.002 [-0.007, +0.003] against "
            "learned-greedy |") in text
    assert ("| bandwidth x0.5, 1, 2 and 200 ms, the warm start re-tuned per speed | 205 | +0.012 [+0.002, +0.022] "
            "against learned-greedy | +0.010, +0.014 | 2 of 2 | 1 / 0 | x4, 200 ms: +0.004 [-0.001, +0.009] against "
            "learned-greedy |") in text
    assert ("(`sweep-x1.json`, `sweep.json`, `sweep-deadlines.json`, `sweep-curriculum.json`, "
            "`sweep-teacher-per-speed.json`)") in text
    assert "`seeds-x1.json` from `train_agent.py run --seeds 0,1` at commit `1212121212`" in text
    assert ("trained at x1, fcc-ppo minus cachenet +0.022 [+0.017, +0.027]; trained over the mixture, fcc-ppo minus "
            "cachenet +0.018 [+0.013, +0.023].") in text


def test_ablation_block_names_the_best_reference_and_the_budget(tmp_path: Path) -> None:
    summary = {"baseline": {"seeds": [0, 1], "wall_s_mean": 100.4, "best_val_accuracy_mean": 0.7712,
                            "val_minus_best_reference_per_seed": [0.004, -0.002], "test_accuracy_mean": 0.7501,
                            "test_minus_learned-greedy_per_seed": [0.006, -0.001]}}
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "ablation-hp.json").write_text(json.dumps({
        "format": results.FORMAT, "name": "ablation-hp", "command": ["python", "benchmarks/rl_ablation.py"],
        "code": {"commit": "ef" * 20}, "kind": "json",
        "data": {"timesteps": 100_000, "test_episodes_per_trace": 2, "best_reference_on_test": "learned-greedy",
                 "references_test": {"cachenet": {"all": 0.745}, "learned-greedy": {"all": 0.748}},
                 "summary": summary}}))
    text = results.block_ablation(folder, "ablation-hp")
    assert "held-out minus learned-greedy, per seed |" in text
    assert "| baseline | 100,000 | 2 | 100 | 0.771 | +0.004, -0.002 | 0.750 | +0.006, -0.001 |" in text
    assert "cachenet 0.745, learned-greedy 0.748" in text
    assert "a reduced budget (100,000 steps, not the main job's 600,000)" in text
    assert "Every run trained and validated at bandwidth x1; held out at x1. Measured by" in text
    rec = json.loads((folder / "ablation-hp.json").read_text())
    rec["data"]["temporal_observation"] = True
    (folder / "ablation-hp.json").write_text(json.dumps(rec))
    assert ("held out at x1. Every policy, the references included (tuned again on it), observed the student's "
            "recent history as well") in results.block_ablation(folder, "ablation-hp")
    rec["data"].update(temporal_observation=False, bandwidth_scale=4.0, train_bandwidth_scales=[1.0])
    (folder / "ablation-hp.json").write_text(json.dumps(rec))
    assert ("Every run trained and validated at bandwidth x4; held out at x4 (the references tuned there on the "
            "training side, as at a sweep point). Measured by") in results.block_ablation(folder, "ablation-hp")


def test_a_stale_number_fails_the_check_and_update_fixes_it(tmp_path: Path) -> None:
    folder = _tiny_results(tmp_path, 0.03, 0.02, 0.04)
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- results:main-claim -->\nPPO wins by +0.033.\n<!-- /results:main-claim -->\n")
    assert results.check_readme(readme, folder) == ["main-claim"]
    code = train_agent.main(["results", "--check", "--readme", str(readme), "--results", str(folder)])
    assert code == 1
    assert results.update_readme(readme, folder) == ["main-claim"]
    assert results.check_readme(readme, folder) == []
    assert "+0.030 [+0.020, +0.040]" in readme.read_text() and readme.read_text().startswith("# x\n")


def test_unknown_block_and_missing_results_are_named(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:nope -->\nx\n<!-- /results:nope -->\n")
    with pytest.raises(results.ResultsError, match=r"\['nope'\] have no renderer"):
        results.check_readme(readme, tmp_path)
    readme.write_text("<!-- results:main-claim -->\nx\n<!-- /results:main-claim -->\n")
    with pytest.raises(results.ResultsError, match=r"main.json: missing"):
        results.check_readme(readme, tmp_path)


def test_record_keeps_the_report_without_episode_arrays(tmp_path: Path) -> None:
    rep = tmp_path / "rep"
    rep.mkdir()
    (rep / "report.json").write_text(json.dumps({"local": {"all": {"accuracy": 0.5, "episode_accuracy": [0.5]}}}))
    (rep / "report_meta.json").write_text(json.dumps({"run": {"command": ["train_agent.py", "evaluate"]}}))
    path = results.record("tiny", rep, tmp_path / "results")
    got = json.loads(path.read_text())
    assert got["report"] == {"local": {"all": {"accuracy": 0.5}}}
    assert got["command"] == ["train_agent.py", "evaluate"] and got["code"]["commit"]
    with pytest.raises(results.ResultsError, match="expected lower-case"):
        results.record("Bad Name", rep, tmp_path / "results")


@pytest.mark.slow
def test_the_main_job_reproduces_its_recorded_results(tmp_path: Path) -> None:
    """README command 1's job, re-run: its report equals results/main.json (reports are deterministic on one
    machine and library versions)."""
    recorded = results.load(ROOT / "results", "main")
    assert recorded["command"] == ["train_agent.py", "run"]  # README command 1 (no subcommand means run)
    out = tmp_path / "run"
    assert train_agent.main(["--out", str(out), "--no-progress"]) == 0
    assert results.collect(out)["report"] == recorded["report"]


def test_temporal_confidence_block_says_which_head_beats_the_max_probability(tmp_path: Path) -> None:
    rows = [{"scorer": "calibrated max probability", "auroc": [0.857], "brier": [0.150]},
            {"scorer": "top-1 agreement share over 8 frames (ties by max probability)", "auroc": [0.854], "brier": []},
            {"scorer": "distilled head: one frame", "auroc": [0.845, 0.847], "brier": [0.155, 0.157]},
            {"scorer": "distilled head: + history", "auroc": [0.864, 0.856], "brier": [0.146, 0.146]}]
    folder = tmp_path / "results"
    folder.mkdir()

    def write(rows: list) -> None:
        (folder / "temporal-confidence.json").write_text(json.dumps({
            "format": results.FORMAT, "name": "temporal-confidence", "kind": "benchmark",
            "command": ["python", "benchmarks/temporal_confidence.py"], "code": {"commit": "ab" * 20},
            "data": {"test_frames": 10464, "train_frames": 25417, "window": 8, "rows": rows}}))

    write(rows)
    text = results.block_temporal_confidence(folder)
    assert "| distilled head: one frame | 0.846 | 0.845, 0.847 | 0.156 |" in text
    assert "| top-1 agreement share over 8 frames (ties by max probability) | 0.854 | 0.854 | - |" in text
    # one seed of the history head (0.856) is below the max probability (0.857): no head is above with every seed
    assert "No head is above the calibrated max probability with every head seed." in text
    rows[3]["auroc"] = [0.864, 0.865]
    write(rows)
    assert "with every head seed: + history." in results.block_temporal_confidence(folder)

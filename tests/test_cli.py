"""The entry point and the README's promises: subcommands, help, and CI running the README's own commands."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_help_lists_every_subcommand() -> None:
    out = subprocess.run([sys.executable, "train_agent.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0
    for cmd in ("run", "train", "evaluate", "export", "profile", "traces"):
        assert re.search(rf"^\s+{cmd}\s+\S", out.stdout, re.M), cmd


def test_readme_opens_with_two_commands_that_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    setup_and_run, tests = blocks[0].strip(), blocks[1].strip()
    assert readme.index("```bash") < readme.index("## ")  # the commands come first
    setup = setup_and_run.rsplit(" && ", 1)[0]
    assert setup_and_run.endswith("train_agent.py")
    ci = (ROOT / ".ci" / "run").read_text()
    assert setup in ci and tests in ci


def test_traces_subcommand_prints_a_table() -> None:
    out = subprocess.run([sys.executable, "train_agent.py", "traces", "--traces", "embedded"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0 and "| norway-hsdpa |" in out.stdout


def test_evaluate_cli_orders_local_cbo_oracle(tmp_path: Path) -> None:
    out = tmp_path / "ev"
    proc = subprocess.run([sys.executable, "train_agent.py", "evaluate", "--policies", "local,cbo,oracle",
                           "--episodes", "1", "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json

    report = json.loads((out / "report.json").read_text())
    families = ["fcc", "norway-hsdpa"] if "fcc" in report["local"] else ["all"]
    for fam in families:
        acc = {p: report[p][fam]["accuracy"] for p in ("local", "cbo", "oracle")}
        assert acc["local"] <= acc["cbo"] <= acc["oracle"], (fam, acc)
    meta = json.loads((out / "report_meta.json").read_text())
    assert "tau" in meta["policies"]["cbo"] and meta["run"]["heuristic_tuning"]["tuned_on"]


def test_slowdown_takes_auto_or_a_factor_of_at_least_one() -> None:
    import argparse

    import pytest

    from offload_common.cli import slowdown_value

    assert slowdown_value("auto") == "auto" and slowdown_value("4.5") == 4.5
    for bad in ("0.5", "nan", "fast", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="'auto' or a number >= 1"):
            slowdown_value(bad)

"""The code's structure as the project states it: the rooms in agents/, one training config, one atomic write."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from agents.training import TrainConfig
from offload_common.files import atomic_folder, atomic_path

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("policies", "evaluation", "training", "deploy", "live", "workflow")


def _imports(path: Path) -> list[tuple[int, str, int]]:
    """(line, module, relative level) of every ``from X import`` / ``import X`` in a file, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            found.append((node.lineno, node.module or "", node.level))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, 0) for alias in node.names]
    return found


def test_agents_rooms_import_each_other_only_through_their_packages() -> None:
    bad = []
    for room in ROOMS:
        for path in sorted((ROOT / "agents" / room).glob("*.py")):
            for line, module, level in _imports(path):
                where = f"{path.relative_to(ROOT)}:{line}"
                if level > 1:
                    bad.append(f"{where}: relative import reaching out of its room ({'.' * level}{module})")
                parts = module.split(".")
                if level == 0 and parts[0] == "agents" and len(parts) > 1 and parts[1] != room and len(parts) > 2:
                    bad.append(f"{where}: imports the module {module} of another room, not its package")
    assert not bad, "\n".join(bad)
    assert sorted(p.name for p in (ROOT / "agents").glob("*.py")) == ["__init__.py"]  # every module is in a room


def test_nothing_below_agents_imports_agents_or_the_cli() -> None:
    """Data flows one way: traces and profiles -> env -> agents; no lower package reaches back up."""
    lower = {"offload_common": (), "bandwidth_traces": ("offload_common",), "perception": ("offload_common",),
             "envs": ("offload_common", "bandwidth_traces", "perception")}
    project = {"offload_common", "bandwidth_traces", "perception", "envs", "agents", "train_agent"}
    bad = []
    for package, allowed in lower.items():
        for path in sorted((ROOT / package).glob("*.py")):
            for line, module, level in _imports(path):
                top = module.split(".")[0]
                if level == 0 and top in project and top != package and top not in allowed:
                    bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not bad, "\n".join(bad)


def test_one_train_config_feeds_both_frameworks() -> None:
    cfg = TrainConfig(learning_rate=1e-3, gamma=0.8, gae_lambda=0.7, ent_coef=0.05, n_epochs=3, batch_size=64)
    sb3, rllib = cfg.sb3_kwargs(), cfg.rllib_training()
    assert (sb3["learning_rate"], rllib["lr"]) == (1e-3, 1e-3)
    assert (sb3["gamma"], rllib["gamma"]) == (0.8, 0.8)
    assert (sb3["gae_lambda"], rllib["lambda_"]) == (0.7, 0.7)
    assert (sb3["ent_coef"], rllib["entropy_coeff"]) == (0.05, 0.05)
    assert (sb3["n_epochs"], rllib["num_epochs"]) == (3, 3)
    assert (sb3["batch_size"], rllib["minibatch_size"]) == (64, 64)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg  # what config.json stores reads back equal


def test_train_config_errors_name_the_setting() -> None:
    with pytest.raises(ValueError, match="algo='dqn': rllib trains"):
        TrainConfig(framework="rllib", algo="dqn")
    with pytest.raises(ValueError, match=r"TrainConfig.batch_size=0"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match=r"unknown settings \['lr'\]"):
        TrainConfig.from_dict({"lr": 1e-3})


def test_cli_defaults_are_the_config_defaults() -> None:
    from train_agent import build_parser

    train = build_parser().parse_args(["train"])
    defaults = TrainConfig()
    assert (train.algo, train.timesteps, train.n_envs, train.framework, train.iterations, train.num_env_runners) == (
        defaults.algo, defaults.timesteps, defaults.n_envs, defaults.framework, defaults.iterations,
        defaults.num_env_runners)


def test_atomic_path_keeps_the_old_file_on_failure_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "model.zip"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".zip")  # writers that pick the format by suffix
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["model.zip"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["model.zip"]


def test_atomic_folder_swaps_in_whole(tmp_path: Path) -> None:
    final = tmp_path / "best"
    final.mkdir()
    (final / "a").write_text("old")
    with pytest.raises(RuntimeError), atomic_folder(final) as tmp:
        (tmp / "a").write_text("half")
        raise RuntimeError("crash")
    assert (final / "a").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["best"]
    with atomic_folder(final) as tmp:
        (tmp / "b").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["b"] and sorted(p.name for p in tmp_path.iterdir()) == ["best"]

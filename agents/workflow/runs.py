"""Training run folders as the evaluation sees them: named, grouped by seed, loaded as policies."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.evaluation import SeedGroup
from agents.policies import Policy
from agents.training import load_run_policy, method_name
from offload_common.files import read_json


def _config_key(config: dict[str, Any]) -> str:
    """A run's config without what differs between seeds of one experiment (seed, command line)."""
    def strip(d: Any) -> Any:
        if isinstance(d, dict):
            return {k: strip(v) for k, v in d.items() if k not in ("seed", "command")}
        return d

    return json.dumps(strip(config), sort_keys=True)


def _run_label(config: dict[str, Any]) -> str:
    """The method a run's config.json trained (runs from before ``framework`` was recorded are SB3)."""
    return method_name(config.get("framework", "sb3"), str(config.get("train_config", {}).get("algo", "ppo")))


def group_runs(runs: Sequence[Path]) -> tuple[list[tuple[Path, str]], list[SeedGroup]]:
    """Name every run folder and group those that differ only in their seed.

    Runs whose ``config.json`` is the same except ``seed`` (and the command line) form one group when there are
    two or more of them: each is named ``<label>-seed<seed>`` and the group gets an across-seed entry ``<label>
    (<n> seeds)``. The label is the algorithm (``ppo``, ``rllib-ppo``); a second group of the same algorithm is
    labelled by its runs' common parent folder (the OUT of ``train --seeds``), else numbered. Any other run keeps
    its folder name, as before. Returns ``(run, name)`` pairs in the
    given order and the groups. Raises ValueError (naming ``--runs``) when a run is given twice or two runs of
    one group share a seed.
    """
    resolved = [Path(r).resolve() for r in runs]
    dupes = {str(r) for r in resolved if resolved.count(r) > 1}
    if dupes:
        raise ValueError(f"--runs: {', '.join(sorted(dupes))} given more than once")
    configs = [read_json(r / "config.json", "run config") if (r / "config.json").is_file() else None for r in runs]
    buckets: dict[str, list[int]] = {}
    for i, cfg in enumerate(configs):
        if cfg is not None and "seed" in cfg:
            buckets.setdefault(_config_key(cfg), []).append(i)
    names = [Path(r).name for r in runs]
    groups: list[SeedGroup] = []
    used: set[str] = set()
    for members in buckets.values():
        if len(members) < 2:
            continue
        seeds = [int(configs[i]["seed"]) for i in members]
        if len(set(seeds)) < len(seeds):
            clash = sorted({s for s in seeds if seeds.count(s) > 1})
            raise ValueError(f"--runs: runs {', '.join(str(runs[i]) for i in members)} have the same config and "
                             f"seed(s) {clash}: the same experiment twice, which would count one seed twice")
        parents = {resolved[i].parent for i in members}
        label = _run_label(configs[members[0]])
        if label in used and len(parents) == 1:  # a second group of the same algorithm: name it by its folder
            label = resolved[members[0]].parent.name
        base, k = label, 2
        while label in used:
            label, k = f"{base}-{k}", k + 1
        used.add(label)
        order = sorted(range(len(members)), key=lambda j: seeds[j])
        for j in order:
            names[members[j]] = f"{label}-seed{seeds[j]}"
        groups.append(SeedGroup(label, tuple(seeds[j] for j in order),
                                tuple(names[members[j]] for j in order)))
    for i, name in enumerate(names):  # two folders of the same name elsewhere must not overwrite each other
        if names.count(name) > 1:
            names[i] = f"{resolved[i].parent.name}/{name}"
    return list(zip(runs, names)), groups


def training_conditions(runs: Sequence[Path]) -> dict[str, dict[str, Any]]:
    """Per learned run (``group_runs``' names): the bandwidth scales and the deadline it was trained at, from its
    config.json or train.json (a run recorded before ``bandwidth_scales`` existed trained on the traces as
    recorded, x1), ``deadlines_ms`` when it trained at several deadlines, ``curriculum_rounds`` when a curriculum
    re-weighted its scales, ``warm_start_per_scale`` when each speed was cloned from its own re-tuned teacher, and
    ``action_mask`` / ``residual`` when its network masked actions or added learned-greedy's scores."""
    out: dict[str, dict[str, Any]] = {}
    for run, name in group_runs(runs)[0]:
        # config.json, which the CLI writes; a run trained through the API (train_sb3) has only train.json, which
        # records the same two settings
        path = next((p for p in (Path(run) / "config.json", Path(run) / "train.json") if p.is_file()), None)
        cfg = read_json(path, "run config") if path is not None else {}
        scales = cfg.get("train_config", {}).get("bandwidth_scales", [1.0])
        deadlines = cfg.get("train_config", {}).get("deadlines_ms", [])
        rounds = cfg.get("train_config", {}).get("curriculum_rounds", 0)
        per_scale = cfg.get("train_config", {}).get("warm_start_per_scale", False)
        masked = cfg.get("train_config", {}).get("action_mask", False)
        residual = cfg.get("train_config", {}).get("residual", False)
        out[name] = {"bandwidth_scales": [float(s) for s in scales],
                     "deadline_ms": cfg.get("env_config", {}).get("deadline_ms"),
                     **({"deadlines_ms": [float(d) for d in deadlines]} if deadlines else {}),
                     **({"curriculum_rounds": int(rounds)} if rounds else {}),
                     **({"warm_start_per_scale": True} if per_scale else {}),
                     **({"action_mask": True} if masked else {}), **({"residual": True} if residual else {})}
    return out


def load_runs(runs: Sequence[Path]) -> tuple[dict[str, Policy], list[SeedGroup]]:
    """The learned policies of ``runs`` by name (``group_runs``' names) and the seed groups among them."""
    named, groups = group_runs(runs)
    learned: dict[str, Policy] = {}
    for run, name in named:
        learned[name] = load_run_policy(run, name)
    return learned, groups

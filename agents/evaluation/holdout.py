"""Cross-dataset evaluation: every trace of another set is a test trace (``evaluate --test-traces PATH``).

Pensieve and Genet judge a controller by training on one trace set and testing on another. Here the heuristics are
tuned (and learned runs were trained) on the training side of ``--traces``; the test episodes replay every uplink
trace under PATH, on held-out scenes (the scene split stays). A trace of PATH that also appears in the training side
(the same file, or the same throughput samples under another name) is removed from the tuning set, so nothing of
PATH is tuned on. Families are PATH's folders, as ``load_traces`` assigns them (a file's family is its folder's
name); a family of one trace gets a warning, since an interval over its episodes says nothing about other traces.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bandwidth_traces import Trace, TraceFormatError, families, load_traces

from .rollout import EvalResult
from .suite import Setup

FORMS = ("a cooked trace file ('time_s throughput_Mbps' per line), a Mahimahi file (one millisecond timestamp per "
         "line; '.down' files are skipped, offloads go up), or a folder of them (subfolders are the families)")


def load_test_traces(path: str, flag: str = "--test-traces", skip_downlink: bool = True) -> list[Trace]:
    """Every uplink trace under ``path``. Raises FileNotFoundError / ValueError naming ``flag``, the path and the
    expected forms when the path is missing, holds no trace file, a file does not parse, or only downlinks."""
    try:
        traces = load_traces(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{flag} {path}: no such file or folder; expected {FORMS}") from None
    except TraceFormatError as exc:
        raise ValueError(f"{flag} {path}: {exc}; expected {FORMS}") from None
    kept = [t for t in traces if not (skip_downlink and t.name.endswith(".down"))]
    if not kept:
        raise ValueError(f"{flag} {path}: only Mahimahi downlink ('.down') traces ({len(traces)}); offloads use the "
                         f"uplink, so none is usable; expected {FORMS}")
    return kept


def _content_key(trace: Trace) -> str:
    """A digest of a trace's samples: the same trace copied under another name or folder has the same key."""
    h = hashlib.sha1()
    h.update(trace.times_s.tobytes())
    h.update(trace.mbps.tobytes())
    h.update(repr(trace.duration_s).encode())
    return h.hexdigest()


def _same_file(a: Trace, b: Trace) -> bool:
    return bool(a.source) and bool(b.source) and Path(a.source).resolve() == Path(b.source).resolve()


def cross_setup(setup: Setup, test_traces: Sequence[Trace]) -> tuple[Setup, list[str]]:
    """``setup`` with its test side replaced by ``test_traces`` and every copy of them removed from its training
    side. Returns the new setup and the names (family/name) of the training traces removed."""
    keys = {_content_key(t) for t in test_traces}
    train, removed = [], []
    for t in setup.train_traces:
        if _content_key(t) in keys or any(_same_file(t, u) for u in test_traces):
            removed.append(f"{t.family}/{t.name}")
        else:
            train.append(t)
    if not train:
        raise ValueError("--test-traces: every training trace of --traces is also a test trace, so nothing is left "
                         "to tune on; point --traces at another trace set")
    return replace(setup, train_traces=train, test_traces=list(test_traces)), removed


def single_trace_families(test_traces: Sequence[Trace]) -> dict[str, str]:
    """Family -> warning, for every family with one trace: its interval (over episodes of that one trace)
    measures the episodes' spread, not how a policy does on other traces of its kind."""
    return {fam: f"family {fam} has a single test trace ({members[0].name}): its 95% interval spans episodes of "
                 "that one trace only and is not a meaningful interval for the family"
            for fam, members in families(test_traces).items() if len(members) == 1}


def mark_family_warnings(results: dict[str, EvalResult], warnings: dict[str, str]) -> None:
    """Add each family's warning to its metrics in every policy's results (so report.json carries it)."""
    for res in results.values():
        for fam, text in warnings.items():
            if fam in res.metrics:
                res.metrics[fam]["warning"] = text


def runs_trained_on(runs: Sequence[Path], test_traces: Sequence[Trace]) -> list[str]:
    """Warnings for learned runs whose training side (their ``config.json``'s traces and env split) holds any of
    ``test_traces``: such a run saw test traces in training, so its test accuracy is not a held-out result.
    Runs on the embedded generator, or whose traces are no longer at their path, cannot be checked (noted too)."""
    from envs import EnvConfig, select_traces
    from offload_common.files import read_json

    keys = {_content_key(t) for t in test_traces}
    out = []
    for run in runs:
        cfg_path = Path(run) / "config.json"
        if not cfg_path.is_file():
            out.append(f"run {run}: no config.json, so whether it trained on test traces cannot be checked")
            continue
        cfg = read_json(cfg_path, "run config")
        source = str(cfg.get("traces", ""))
        if not Path(source).exists():
            continue  # the embedded generator (synthetic traces cannot be copies of real test files) or moved
        env_cfg = EnvConfig.from_dict(cfg["env_config"]).replace(trace_split="train")
        seen = [t for t in select_traces(load_traces(source), env_cfg) if _content_key(t) in keys]
        if seen:
            out.append(f"run {run} was trained on {len(seen)} of the test traces (e.g. {seen[0].family}/"
                       f"{seen[0].name}): its accuracy on them is not a held-out result")
    return out


def describe_test_side(path: str, test_traces: Sequence[Trace], removed: list[str]) -> dict[str, Any]:
    """What report_meta.json records about a cross-dataset evaluation."""
    return {"test_traces_path": str(path),
            "test_families": {fam: len(m) for fam, m in families(test_traces).items()},
            "removed_from_tuning": removed,
            "note": "every trace under test_traces_path is a test trace; heuristics were tuned on the training "
                    "side of --traces only (minus any copy of a test trace), test episodes use held-out scenes"}

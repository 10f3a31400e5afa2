"""The evaluation report with extra parts (warnings, across-seed entries), written as one atomic set of files.

``write_report`` writes the standard report; the research workflow adds to it: warnings (a test family of one
trace, whose interval says nothing about other traces), across-seed entries in report.json and report_meta.json,
and sections of report.md. Adding them after ``write_report`` returned would leave a moment (or, after a crash, a
report) in which the files disagree, so the standard report is built in a temporary folder, completed there, and
only then moved into place the way ``write_report`` does it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from offload_common.files import atomic_write_text, read_json, staged_files, write_json

from .report import is_report_file, write_report
from .rollout import EvalResult


def warnings_markdown(warnings: Sequence[str]) -> str:
    """A report.md section listing ``warnings`` (empty when there are none)."""
    if not warnings:
        return ""
    return "## Warnings\n\n" + "".join(f"- {w}\n" for w in warnings)


def write_report_plus(results: dict[str, EvalResult], out_dir: str | os.PathLike, trace_mean_mbps: np.ndarray,
                      action_names: list[str], extra: dict[str, Any] | None = None,
                      warnings: Sequence[str] = (), entries: dict[str, dict[str, Any]] | None = None,
                      meta: dict[str, Any] | None = None, sections: Sequence[str] = ()) -> dict[str, Any]:
    """``write_report`` plus ``warnings`` (report.md, report_meta.json ``warnings`` and ``notes``), ``entries``
    added to report.json (name -> family -> values, e.g. across-seed summaries), ``meta`` keys added to
    report_meta.json and markdown ``sections`` appended to report.md; all files appear together or not at all.

    Like ``write_report``, a folder holding only a report is swapped whole; in a folder holding more (a run or a
    seeds folder) each finished file replaces its old version and nothing else is touched. Returns report.json.
    """
    with staged_files(out_dir, is_report_file) as build:
        write_report(results, build, trace_mean_mbps, action_names, extra)
        payload = read_json(build / "report.json", "report")
        clash = set(entries or {}) & set(payload)
        if clash:
            raise ValueError(f"report entries {sorted(clash)} would replace evaluated policies of the same name")
        payload.update(entries or {})
        write_json(build / "report.json", payload)
        report_meta = read_json(build / "report_meta.json", "report meta")
        report_meta.update(meta or {})
        report_meta["warnings"] = list(warnings)
        report_meta["notes"] = [*report_meta.get("notes", []), *warnings]
        write_json(build / "report_meta.json", report_meta)
        md = (build / "report.md").read_text()
        parts = [warnings_markdown(warnings), *sections]
        md = md.rstrip("\n") + "\n" + "".join("\n" + p.rstrip("\n") + "\n" for p in parts if p)
        atomic_write_text(build / "report.md", md)
    return payload

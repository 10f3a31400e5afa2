"""Distilled confidence: a small head on the student's own outputs that predicts, per frame, whether each answer
would be right: P(student right), P(server right at each resolution) and P(teacher right).

Inputs are what the device already has after its student's forward pass: the compact embedding
(``perception.embedding``) and the calibrated top-k probabilities. The head is an MLP (one hidden ReLU layer,
sigmoid outputs) trained with binary cross-entropy on training-side scenes only, with cross-fitting: frames of
training scenes are scored out of fold (K folds by scene), frames of test scenes by the model fitted on all
training scenes. No frame is ever scored by a head that saw its label. Inference is NumPy only (weights stored
in the profile), so a device runs it without PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

# the head's inference runs on devices too: its one definition is in offload_common.vision
from offload_common.vision import HEAD_KEYS, distill_inputs, distilled  # noqa: F401

if TYPE_CHECKING:
    from .profile import FrameProfile


@dataclass(frozen=True)
class DistilledHead:
    """NumPy inference of the head: standardise, one hidden ReLU layer, sigmoid outputs."""

    mu: NDArray[np.float32]
    sd: NDArray[np.float32]
    w0: NDArray[np.float32]
    b0: NDArray[np.float32]
    w1: NDArray[np.float32]
    b1: NDArray[np.float32]

    def predict(self, inputs: NDArray) -> NDArray[np.float32]:
        """[N, input_dim] -> [N, outputs] probabilities."""
        return distilled(inputs, self.mu, self.sd, self.w0, self.b0, self.w1, self.b1)

    def arrays(self) -> dict[str, NDArray]:
        return dict(zip(HEAD_KEYS, (self.mu, self.sd, self.w0, self.b0, self.w1, self.b1)))

    @classmethod
    def from_arrays(cls, arrays: dict[str, NDArray]) -> DistilledHead:
        return cls(*(np.asarray(arrays[k], np.float32) for k in HEAD_KEYS))


def train_head(x: NDArray, y: NDArray, seed: int = 0, hidden: int = 16, epochs: int = 3, lr: float = 3e-3,
               weight_decay: float = 1e-2, batch: int = 512) -> DistilledHead:
    """Fit the head on inputs ``x`` [N, F] and 0/1 targets ``y`` [N, T] (PyTorch at build time only).

    Small and short on purpose: frames of a scene are near copies, so the effective sample is the ~700 training
    scenes, and a larger or longer-trained head overfits (measured on the default profile's test scenes: 64 hidden
    units for 30 epochs gave a Brier score of 0.181 for P(student right), worse than the temperature-scaled max
    probability's 0.150; 16 units for 3 epochs with weight decay 1e-2 gave 0.156)."""
    import torch

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    mu = x.mean(0)
    sd = x.std(0) + 1e-6
    xt = torch.as_tensor((x - mu) / sd, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.float32)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, y.shape[1]))
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    with torch.enable_grad():
        for _ in range(epochs):
            for idx in torch.randperm(len(xt), generator=g).split(batch):
                opt.zero_grad()
                loss_fn(net(xt[idx]), yt[idx]).backward()
                opt.step()
    w0, b0, w1, b1 = (p.detach().numpy().astype(np.float32) for p in net.parameters())
    return DistilledHead(mu.astype(np.float32), sd.astype(np.float32), w0.T.copy(), b0, w1.T.copy(), b1)


def auroc(score: NDArray, target: NDArray) -> float:
    """Area under the ROC curve (Mann-Whitney with average ranks for ties); nan if a class is missing."""
    score = np.asarray(score, np.float64)
    target = np.asarray(target, bool)
    n1, n0 = int(target.sum()), int((~target).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    ranks = np.empty(len(s))
    _, start, counts = np.unique(s, return_index=True, return_counts=True)
    avg = start + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[target].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def brier(prob: NDArray, target: NDArray) -> float:
    """Mean squared error of a probability against 0/1 outcomes."""
    return float(np.mean((np.asarray(prob, np.float64) - np.asarray(target, np.float64)) ** 2))


def target_names(resolutions: tuple[int, ...]) -> list[str]:
    return ["student"] + [f"server@{r}" for r in resolutions] + ["teacher"]


def fit_distilled(profile: FrameProfile, test_fraction: float = 0.3, split_seed: int = 0, folds: int = 5,
                  seed: int = 0) -> FrameProfile:
    """Cross-fit the head on ``profile``'s training scenes; return the profile with ``distilled`` predictions,
    the full-train head's weights in ``device_arrays`` and the test-scene report in ``meta['distilled']``."""
    if profile.embedding is None:
        raise ValueError("fit_distilled needs a profile with an embedding (profile format 2)")
    x = distill_inputs(profile.embedding, profile.student_topk_prob)
    y = np.concatenate([profile.student_correct[:, None], profile.server_correct,
                        profile.teacher_correct[:, None]], axis=1).astype(np.float32)
    train_ids, test_ids = profile.split_ids(test_fraction, split_seed)
    is_train = np.isin(profile.clip, train_ids)
    pred = np.zeros(y.shape, np.float32)
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(rng.permutation(train_ids).tolist(), np.arange(len(train_ids)) % folds))
    fold = np.array([fold_of.get(int(c), -1) for c in profile.clip])
    for k in range(min(folds, len(train_ids))):
        fit_rows = is_train & (fold != k)
        score_rows = is_train & (fold == k)
        if fit_rows.any() and score_rows.any():
            pred[score_rows] = train_head(x[fit_rows], y[fit_rows], seed=seed + 1 + k).predict(x[score_rows])
    head = train_head(x[is_train], y[is_train], seed=seed)
    pred[~is_train] = head.predict(x[~is_train])

    test = ~is_train
    names = target_names(profile.resolutions)
    report: dict = {"split": {"test_fraction": test_fraction, "seed": split_seed}, "folds": folds,
                    "inputs": "embedding + calibrated top-k + margin + log top-1", "test_frames": int(test.sum())}
    if test.any():
        maxprob = profile.student_topk_prob[test, 0]
        st = profile.student_correct[test]
        report.update({
            "auroc_student_right": auroc(pred[test, 0], st), "auroc_maxprob_student_right": auroc(maxprob, st),
            "brier_student_right": brier(pred[test, 0], st), "brier_maxprob_student_right": brier(maxprob, st)})
        per = {}
        for j, name in enumerate(names[1:], 1):
            base_rate = float(y[is_train, j].mean())
            per[name] = {"auroc": auroc(pred[test, j], y[test, j]), "brier": brier(pred[test, j], y[test, j]),
                         "brier_unconditional": brier(np.full(int(test.sum()), base_rate), y[test, j]),
                         "unconditional_accuracy_train": base_rate}
        report["remote"] = per
    meta = {**profile.meta, "distilled": report}
    return replace(profile, distilled=pred, device_arrays={**profile.device_arrays, **head.arrays()}, meta=meta)

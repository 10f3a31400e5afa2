"""A Markov-modulated throughput model fit to a real trace family: the embedded default when ../shared is absent.

Model (at a fixed step, 1 s by default): a hidden state s_t in {0..K-1} is a throughput quantile band of the
family; it moves by a transition matrix fit by counting. Links differ (one FCC home line averages 0.5 Mbit/s,
another 2.5), so each file belongs to a regime (a quantile group of per-file mean throughput) with its own
transition matrix and start distribution; a generated trace draws its regime once, by the regimes' file shares.
Within a band the throughput is drawn from the band's own
empirical quantile function, and when the band does not change the previous value is kept with the probability
measured in the data (real traces hold a rate for several seconds). This keeps the family's marginal distribution
(mean, p10, p90, outage share) by construction and its short-range correlation through the chain and the hold.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from offload_common.files import write_json

from .trace import Trace

FORMAT_VERSION = 1
PARAMS_DIR = Path(__file__).resolve().parent / "params"


@dataclass(frozen=True)
class FamilyStats:
    """Summary statistics of a family's throughput on a fixed step grid (what the generator must reproduce)."""

    mean_mbps: float
    p10_mbps: float
    p50_mbps: float
    p90_mbps: float
    lag1_autocorr: float
    outage_fraction: float


def family_stats(series: Sequence[NDArray[np.float64]]) -> FamilyStats:
    """Stats pooled over per-trace throughput series on one step grid; autocorrelation about the pooled mean."""
    allv = np.concatenate(series)
    mu = allv.mean()
    num = sum(float(np.sum((s[:-1] - mu) * (s[1:] - mu))) for s in series if s.size > 1)
    den = sum(float(np.sum((s[:-1] - mu) ** 2)) for s in series if s.size > 1)
    p10, p50, p90 = np.percentile(allv, [10, 50, 90])
    return FamilyStats(float(mu), float(p10), float(p50), float(p90), num / den if den > 0 else 0.0,
                       float(np.mean(allv <= 1e-9)))


@dataclass(frozen=True)
class MarkovTraceModel:
    """Fitted parameters of the Markov-modulated model for one family (saved as small JSON)."""

    family: str
    step_s: float
    band_quantiles: list[list[float]]  # per band: values of its empirical quantile function at evenly spaced levels
    transition: list[list[list[float]]]  # per regime: row-stochastic K x K
    initial: list[list[float]]  # per regime: band frequencies
    regime_weight: list[float]  # share of files in each regime
    hold_prob: list[float]  # per band: P(value unchanged | band unchanged)
    n_files: int
    median_duration_s: float
    target: FamilyStats  # the family's stats this model was fit to (on the same step grid)
    source: str = ""

    @classmethod
    def fit(cls, traces: Sequence[Trace], n_bands: int = 16, n_levels: int = 33, step_s: float = 1.0,
            n_regimes: int = 3, source: str = "") -> MarkovTraceModel:
        """Fit to traces of one family (resampled to ``step_s``)."""
        fams = {t.family for t in traces}
        if len(fams) != 1:
            raise ValueError(f"fit one family at a time; got {sorted(fams)}")
        series = [t.resample(step_s) for t in traces]
        allv = np.concatenate(series)
        edges = np.unique(np.percentile(allv, np.linspace(0, 100, n_bands + 1)[1:-1]))
        labels = [np.searchsorted(edges, s, side="right") for s in series]
        used = np.unique(np.concatenate(labels))
        remap = np.full(edges.size + 1, -1)
        remap[used] = np.arange(used.size)
        labels = [remap[lab] for lab in labels]
        k = used.size
        n_regimes = max(1, min(n_regimes, len(series) // 10))  # >= 10 files to fit each regime's chain
        file_means = np.array([s.mean() for s in series])
        regime = np.minimum((np.argsort(np.argsort(file_means)) * n_regimes) // len(series), n_regimes - 1)
        counts = np.zeros((n_regimes, k, k))
        occupancy = np.zeros((n_regimes, k))
        same_band = np.zeros(k)
        held = np.zeros(k)
        for s, lab, r in zip(series, labels, regime):
            np.add.at(counts[r], (lab[:-1], lab[1:]), 1.0)
            np.add.at(occupancy[r], lab, 1.0)
            stay = lab[:-1] == lab[1:]
            np.add.at(same_band, lab[:-1][stay], 1.0)
            unchanged = stay & np.isclose(s[:-1], s[1:], rtol=1e-3, atol=1e-6)
            np.add.at(held, lab[:-1][unchanged], 1.0)
        counts += 1e-3  # a band seen only at a file's end still has a valid row
        flat_lab = np.concatenate(labels)
        levels = np.linspace(0, 100, n_levels)
        bands = [np.percentile(allv[flat_lab == b], levels).tolist() for b in range(k)]
        return cls(
            family=traces[0].family, step_s=step_s, band_quantiles=bands,
            transition=(counts / counts.sum(2, keepdims=True)).tolist(),
            initial=(occupancy / occupancy.sum(1, keepdims=True)).tolist(),
            regime_weight=(np.bincount(regime, minlength=n_regimes) / len(series)).tolist(),
            hold_prob=np.where(same_band > 0, held / np.maximum(same_band, 1), 0.0).tolist(),
            n_files=len(traces), median_duration_s=float(np.median([t.duration_s for t in traces])),
            target=family_stats(series), source=source)

    def regimes_for(self, n: int, seed: int) -> NDArray[np.intp]:
        """Regime of each of ``n`` traces: shares match ``regime_weight`` (largest remainder), order shuffled."""
        w = np.asarray(self.regime_weight) * n
        counts = np.floor(w).astype(int)
        counts[np.argsort(counts - w)[: n - counts.sum()]] += 1
        regimes = np.repeat(np.arange(w.size), counts)
        return np.random.default_rng([seed, _family_key(self.family)]).permutation(regimes)

    def sample_series(self, n_steps: int, rng: np.random.Generator, regime: int) -> NDArray[np.float64]:
        """One throughput series of ``n_steps`` values (Mbit/s), one per step, in the given regime."""
        r = regime
        trans = np.cumsum(np.asarray(self.transition[r]), axis=1)
        bands = np.asarray(self.band_quantiles)
        hold = np.asarray(self.hold_prob)
        init = np.cumsum(self.initial[r])
        u = rng.random((n_steps, 3))
        state = min(int(np.searchsorted(init, u[0, 0] * init[-1])), len(hold) - 1)
        out = np.empty(n_steps)
        levels = np.linspace(0.0, 1.0, bands.shape[1])
        value = np.interp(u[0, 1], levels, bands[state])
        for i in range(n_steps):
            if i:
                new = min(int(np.searchsorted(trans[state], u[i, 0] * trans[state, -1])), len(hold) - 1)
                if new != state or u[i, 2] >= hold[state]:
                    value = np.interp(u[i, 1], levels, bands[new])
                state = new
            out[i] = value
        return out

    def generate(self, n: int | None = None, duration_s: float | None = None, seed: int = 0) -> list[Trace]:
        """``n`` synthetic traces (default: as many as the real family had, at least 60) of ``duration_s`` each."""
        n = max(self.n_files, 60) if n is None else n
        duration_s = self.median_duration_s if duration_s is None else duration_s
        steps = max(int(round(duration_s / self.step_s)), 2)
        out = []
        for i, regime in enumerate(self.regimes_for(n, seed)):
            rng = np.random.default_rng([seed, i, _family_key(self.family)])
            mbps = self.sample_series(steps, rng, int(regime))
            if not (mbps > 0).any():
                mbps[rng.integers(steps)] = max(self.target.p50_mbps, 1e-3)
            out.append(Trace(name=f"synthetic-{self.family}-{i:03d}", family=self.family,
                             times_s=np.arange(steps) * self.step_s, mbps=mbps, duration_s=steps * self.step_s,
                             source=f"generated: MarkovTraceModel({self.family}) seed={seed} index={i}"))
        return out

    def save(self, path: str | os.PathLike) -> None:
        """Write the parameters as JSON, atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"format_version": FORMAT_VERSION, "model": "markov-modulated", **asdict(self)}
        write_json(path, payload)

    @classmethod
    def load(cls, path: str | os.PathLike) -> MarkovTraceModel:
        """Read parameters written by ``save``; a wrong version or missing field raises a clear error."""
        path = Path(path)
        data = json.loads(path.read_text())
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: format_version {data.get('format_version')!r}, expected {FORMAT_VERSION}")
        fields = set(cls.__dataclass_fields__)
        missing = fields - set(data)
        if missing:
            raise ValueError(f"{path}: missing fields {sorted(missing)}")
        kwargs = {f: data[f] for f in fields}
        kwargs["target"] = FamilyStats(**kwargs["target"])
        return cls(**kwargs)


def _family_key(family: str) -> int:
    return int.from_bytes(family.encode()[:8].ljust(8, b"\0"), "little")


def embedded_models() -> dict[str, MarkovTraceModel]:
    """The committed fitted models, by family."""
    return {m.family: m for m in (MarkovTraceModel.load(p) for p in sorted(PARAMS_DIR.glob("*.json")))}


def embedded_traces(seed: int = 0, families: Sequence[str] | None = None) -> list[Trace]:
    """Synthetic traces from every committed model (the embedded default when no real traces are at hand)."""
    models = embedded_models()
    chosen = families if families is not None else sorted(models)
    unknown = set(chosen) - set(models)
    if unknown:
        raise ValueError(f"no fitted model for families {sorted(unknown)}; have {sorted(models)}")
    return [t for fam in chosen for t in models[fam].generate(seed=seed)]

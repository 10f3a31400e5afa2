"""bandwidth_traces: hand-computed transfer times, every bad-input case, splits, the real data and the generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bandwidth_traces import (
    MarkovTraceModel,
    Trace,
    TraceFormatError,
    embedded_models,
    families,
    family_stats,
    load_traces,
    parse_mahimahi,
    shared_traces_dir,
    split,
)
from bandwidth_traces.__main__ import main as traces_cli


@pytest.fixture
def outage_trace() -> Trace:
    # 0-1 s: 8 Mbit/s (1 MB/s), 1-2 s: outage, 2-3 s: 4 Mbit/s; period 3 s carries 12 Mbit
    return Trace("hand", "unit", np.array([0.0, 1.0, 2.0]), np.array([8.0, 0.0, 4.0]), 3.0)


def test_transfer_time_hand_computed(outage_trace: Trace) -> None:
    t = outage_trace
    assert t.transfer_time(0.0, 500_000) == pytest.approx(0.5)  # 4 Mbit at 8 Mbit/s
    assert t.transfer_time(0.5, 1_000_000) == pytest.approx(2.5)  # 4 Mbit, 1 s outage, 4 Mbit at 4 Mbit/s
    assert t.transfer_time(1.2, 250_000) == pytest.approx(1.3)  # starts inside the outage: waits 0.8 s, sends 0.5 s
    assert t.transfer_time(2.5, 500_000) == pytest.approx(0.75)  # wraps around the end: 0.5 s at 4, 0.25 s at 8
    assert t.transfer_time(0.0, 4_500_000) == pytest.approx(9.0)  # exactly three whole periods
    assert t.transfer_time(7.0, 0) == 0.0
    assert t.mean_mbps == pytest.approx(4.0)


def test_transfer_time_vectorised_matches_scalar(outage_trace: Trace) -> None:
    rng = np.random.default_rng(0)
    starts = rng.uniform(0, 20, 200)
    sizes = rng.uniform(0, 3e6, 200)
    vec = outage_trace.transfer_time(starts, sizes)
    assert vec == pytest.approx([outage_trace.transfer_time(s, b) for s, b in zip(starts, sizes)])
    # delivered bits over [start, start + duration] equal the request
    delivered = outage_trace.cumulative_bits(starts + vec) - outage_trace.cumulative_bits(starts)
    assert delivered == pytest.approx(sizes * 8, rel=1e-9)


def test_mbps_at_wraps(outage_trace: Trace) -> None:
    assert outage_trace.mbps_at([0.0, 1.5, 2.5, 3.2, -0.5, 300.5, 301.0]) == pytest.approx([8, 0, 4, 8, 4, 8, 0])


def _write(tmp_path: Path, text: str, name: str = "trace") -> Path:
    path = tmp_path / "fam" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("", None, "empty file"),
        ("\n\n", None, "empty file"),
        ("0.0\t1.0\n1.0\tabc\n", 2, "non-numeric"),
        ("0.0\t1.0\n1.0\t2.0\t3.0\n", 2, "expected 2 columns"),
        ("0.0\t1.0\n2.0\t1.0\n1.0\t1.0\n", 3, "decreasing timestamp"),
        ("0.0\t1.0\n1.0\t-0.5\n", 2, ">= 0"),
        ("0.0\t1.0\n1.0\tnan\n", 2, ">= 0"),
        ("0.0\t0\n1.0\t0.0\n2\t0\n", None, "zero everywhere"),
        ("0 1\n1 2 3\n", 2, "expected 2 columns"),
    ],
)
def test_cooked_bad_input(tmp_path: Path, text: str, line: int | None, fragment: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(TraceFormatError) as info:
        load_traces(path)
    assert str(path) in str(info.value) and fragment in str(info.value)
    assert info.value.line == line


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("5\n7\nx\n", 3, "non-numeric"),
        ("5\n7\n6\n", 3, "decreasing timestamp"),
        ("5\n-7\n", 2, "negative timestamp"),
        ("0\n0\n", None, "no duration"),
    ],
)
def test_mahimahi_bad_input(tmp_path: Path, text: str, line: int | None, fragment: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(TraceFormatError) as info:
        load_traces(path)
    assert fragment in str(info.value) and info.value.line == line


def test_outage_inside_a_trace_loads(tmp_path: Path) -> None:
    trace = load_traces(_write(tmp_path, "0 2.0\n1 0.0\n2 0.0\n3 1.0"))[0]
    assert trace.mbps.tolist() == [2.0, 0.0, 0.0, 1.0] and trace.duration_s == 4.0
    assert trace.family == "fam"
    # 2 Mbit at t=0.5: 1 Mbit in [0.5, 1), the outage, 1 Mbit in [3, 4)
    assert trace.transfer_time(0.5, 250_000) == pytest.approx(3.5)


def test_mahimahi_keeps_every_byte(tmp_path: Path) -> None:
    # 7 packet opportunities over a 250 ms period, windows of 100 ms: [0,100) 3, [100,200) 2, [200,250] 2
    path = _write(tmp_path, "0\n0\n50\n100\n150\n249\n250\n")
    trace = parse_mahimahi(path, window_ms=100)
    assert trace.duration_s == pytest.approx(0.25)
    assert trace.total_bits == pytest.approx(7 * 1500 * 8)
    assert trace.mbps == pytest.approx([3 * 12000 / 0.1 / 1e6, 2 * 12000 / 0.1 / 1e6, 2 * 12000 / 0.05 / 1e6])


def test_missing_path_is_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_traces(tmp_path / "nope")


def _toy_traces() -> list[Trace]:
    return [Trace(f"f{i}", fam, np.array([0.0]), np.array([1.0 + i]), 5.0) for fam in ("a", "b") for i in range(10)]


def test_split_is_deterministic_and_by_file() -> None:
    traces = _toy_traces()
    train, test = split(traces, 0.3, seed=0)
    assert len(test) == 6 and len(train) == 14
    assert {t.family for t in test} == {"a", "b"}
    shuffled = list(reversed(traces))
    train2, test2 = split(shuffled, 0.3, seed=0)
    assert [t.name for t in test2] == [t.name for t in test]
    other_seed = split(traces, 0.3, seed=1)[1]
    assert {(t.family, t.name) for t in other_seed} != {(t.family, t.name) for t in test}
    with pytest.raises(ValueError, match="test_fraction"):
        split(traces, 1.5)


def test_real_traces_load(shared_traces: Path) -> None:
    traces = load_traces(shared_traces)
    counts = {fam: len(ts) for fam, ts in families(traces).items()}
    assert counts == {"fcc": 150, "norway-hsdpa": 74, "mahimahi-cellular": 6}
    fcc = families(traces)["fcc"]
    mean = sum(t.total_bits for t in fcc) / 1e6 / sum(t.duration_s for t in fcc)
    assert mean == pytest.approx(1.32, abs=0.005)
    ups = [t for t in traces if t.name.endswith(".up")]
    assert all(0.8 <= t.mean_mbps <= 0.95 for t in ups)


@pytest.mark.parametrize("family", ["fcc", "norway-hsdpa", "mahimahi-cellular"])
def test_generator_matches_real_family(shared_traces: Path, family: str) -> None:
    real = load_traces(shared_traces / family)
    target = family_stats([t.resample(1.0) for t in real])
    model = embedded_models()[family]
    generated = model.generate(n=400, seed=3)
    got = family_stats([t.resample(1.0) for t in generated])
    for field in ("mean_mbps", "p10_mbps", "p90_mbps", "lag1_autocorr"):
        want = getattr(target, field)
        assert getattr(got, field) == pytest.approx(want, rel=0.15), field
    # the committed parameters were fit to these very files
    assert model.target.mean_mbps == pytest.approx(target.mean_mbps, rel=1e-6)


def test_generator_round_trip_and_determinism(tmp_path: Path) -> None:
    traces = [Trace(f"t{i}", "toy", np.arange(200.0), np.random.default_rng(i).gamma(2.0, 0.5, 200), 200.0)
              for i in range(20)]
    model = MarkovTraceModel.fit(traces)
    model.save(tmp_path / "toy.json")
    loaded = MarkovTraceModel.load(tmp_path / "toy.json")
    a = loaded.generate(n=3, seed=7)
    b = model.generate(n=3, seed=7)
    assert all(np.array_equal(x.mbps, y.mbps) for x, y in zip(a, b))
    assert not np.array_equal(a[0].mbps, model.generate(n=3, seed=8)[0].mbps)
    bad = tmp_path / "bad.json"
    bad.write_text('{"format_version": 99}')
    with pytest.raises(ValueError, match="format_version"):
        MarkovTraceModel.load(bad)


def test_cli_fit_reports_bands_and_regimes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    for i in range(3):
        _write(tmp_path, "".join(f"{t}.0 {v:.3f}\n" for t, v in enumerate(rng.uniform(0.1, 9.0, 120))), f"t{i}")
    assert traces_cli(["fit", str(tmp_path / "fam"), "-o", str(tmp_path / "fam.json"), "--bands", "4"]) == 0
    assert "4 bands, 1 regime," in capsys.readouterr().out  # 3 files fit one regime; the bands are its states


def test_one_shared_data_locator_finds_traces_and_photos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from perception import shared_images_dir

    (tmp_path / "traces").mkdir()
    (tmp_path / "datasets" / "imagenet-sample").mkdir(parents=True)
    monkeypatch.delenv("OFFLOAD_GYM_TRACES", raising=False)
    monkeypatch.delenv("OFFLOAD_GYM_IMAGES", raising=False)
    monkeypatch.setenv("OFFLOAD_GYM_SHARED", str(tmp_path))
    assert shared_traces_dir() == tmp_path / "traces"
    assert shared_images_dir() == tmp_path / "datasets" / "imagenet-sample"
    monkeypatch.setenv("OFFLOAD_GYM_TRACES", str(tmp_path / "mine"))
    monkeypatch.setenv("OFFLOAD_GYM_IMAGES", str(tmp_path / "photos"))
    assert shared_traces_dir() == tmp_path / "mine" and shared_images_dir() == tmp_path / "photos"


def test_cli_stats_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert traces_cli(["stats", "embedded"]) == 0
    out = capsys.readouterr().out
    assert "| fcc |" in out and "norway-hsdpa" in out
    png = tmp_path / "p.png"
    assert traces_cli(["plot", "embedded", "-o", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert traces_cli(["stats", str(tmp_path / "missing")]) == 2

"""envs._numba_cache: the kernel's on-disk Numba cache goes stale with any source it compiles in, a Numba it was not
checked on falls back to no cache with a warning, and a read-only install gets a writable cache folder."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from envs import _numba_cache, kernel

ROOT = Path(__file__).resolve().parents[1]

_PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
import probe_mod
probe_mod.f(1.0)
print(sum(probe_mod.f.stats.cache_hits.values()), sum(probe_mod.f.stats.cache_misses.values()))
"""


def test_cache_goes_stale_when_any_stamped_source_changes(tmp_path: Path) -> None:
    dep = tmp_path / "dep.py"
    dep.write_text("K = 1\n")
    (tmp_path / "probe_mod.py").write_text(textwrap.dedent("""
        from pathlib import Path

        import numba

        from envs import _numba_cache

        assert _numba_cache.stamp_with_sources((Path(__file__), Path(__file__).with_name("dep.py")))


        @numba.njit(cache=True)
        def f(x):
            return x + 1.0
    """))
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}

    def hits_and_misses() -> list[str]:
        res = subprocess.run([sys.executable, "-c", _PROBE, str(tmp_path)], env=env, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        return res.stdout.split()

    assert hits_and_misses() == ["0", "1"]  # compiled and cached
    assert hits_and_misses() == ["1", "0"]  # served from the cache
    dep.write_text("K = 2\n")  # only the other source changes: Numba's own stamp (probe_mod.py) would not see it
    assert hits_and_misses() == ["0", "1"]
    assert hits_and_misses() == ["1", "0"]


def test_the_kernel_is_cached_and_stamped_with_the_observation_source() -> None:
    import offload_common.observation

    assert kernel._CACHED  # the installed Numba is one of the checked versions
    assert kernel._SOURCES == (Path(kernel.__file__).resolve(), Path(offload_common.observation.__file__).resolve())


@pytest.mark.parametrize("version", ["0.60.0", "0.99.1", "1.0.0rc1"])
def test_an_unchecked_numba_falls_back_to_no_cache_with_a_warning(version: str) -> None:
    with pytest.warns(RuntimeWarning, match=f"Numba {version} is outside the versions checked"):
        assert _numba_cache.stamp_with_sources((Path(kernel.__file__),), version=version) is False


def test_a_read_only_install_gets_a_per_user_cache_folder(tmp_path: Path) -> None:
    environ: dict[str, str] = {}
    assert _numba_cache.use_writable_cache_dir(tmp_path, environ) is None and environ == {}  # writable: in-tree
    folder = _numba_cache.use_writable_cache_dir(tmp_path / "not-writable", environ)  # a missing folder: no write
    assert folder == environ["NUMBA_CACHE_DIR"] and folder.endswith(f"offload-gym-numba-{os.getuid()}")
    chosen = {"NUMBA_CACHE_DIR": "/somewhere/chosen"}
    assert _numba_cache.use_writable_cache_dir(tmp_path / "not-writable", chosen) is None
    assert chosen == {"NUMBA_CACHE_DIR": "/somewhere/chosen"}

"""Numba's on-disk cache for the kernel: the one module that touches Numba internals (issue 25).

Two things, both needed by ``envs.kernel`` before its first ``@njit(cache=True)``:

* ``use_writable_cache_dir``: Numba caches next to the sources; a read-only install (another user's, a system
  site-packages) cannot hold that cache and Numba's user-wide fallback may not exist either, so ``NUMBA_CACHE_DIR``
  is pointed at a per-user temporary folder (public: the environment variable and ``numba.core.config.reload_config``
  for a Numba that was imported already).
* ``stamp_with_sources``: Numba stamps a cached function with its own source file only, but the kernel's machine
  code includes ``offload_common.observation.observation_into``; after an edit of observation.py alone the cache
  would keep serving the old observation (wrong width, writes past the buffer). The kernel's functions are therefore
  stamped with every source they compile in. This needs a private list (``CacheImpl._locator_classes``), so it is
  done only for the Numba versions in ``TESTED`` (tests/test_numba_cache.py checks them); any other version, or a
  Numba whose cache internals are not where expected, gets the fallback: the kernel compiles without the on-disk
  cache (correct, but every process pays the compile, ~25 s) and a RuntimeWarning says why and what to do.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import warnings
from collections.abc import MutableMapping, Sequence
from pathlib import Path

TESTED = ((0, 68), (0, 68))  # first and last Numba minor versions this module was checked on (extend after
#                              running tests/test_numba_cache.py on another one)
_BASES = ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator")  # the source-file locators


def use_writable_cache_dir(package_dir: Path, environ: MutableMapping[str, str] = os.environ) -> str | None:
    """Point ``NUMBA_CACHE_DIR`` at a per-user temporary folder when ``package_dir`` cannot be written and the user
    chose no folder; returns the folder set (None: nothing changed)."""
    if "NUMBA_CACHE_DIR" in environ or os.access(package_dir, os.W_OK):
        return None
    environ["NUMBA_CACHE_DIR"] = folder = str(Path(tempfile.gettempdir()) / f"offload-gym-numba-{os.getuid()}")
    if environ is os.environ and "numba" in sys.modules:  # Numba read its config at import: read it again
        from numba.core.config import reload_config

        reload_config()
    return folder


def _version(text: str) -> tuple[int, int]:
    major, minor = text.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


def _fallback(reason: str) -> bool:
    warnings.warn(f"envs.kernel compiles without Numba's on-disk cache: {reason}. Every process pays the compile "
                  f"(~25 s); check tests/test_numba_cache.py on this Numba and extend envs._numba_cache.TESTED",
                  RuntimeWarning, stacklevel=3)
    return False


def stamp_with_sources(sources: Sequence[Path], version: str | None = None) -> bool:
    """Stamp Numba's cache of the functions defined in ``sources[0]`` with the contents of all ``sources``.

    Returns True when done (once per process and source file; use ``njit(cache=True)``), False after a warning when
    this Numba (``version``, default the installed one) is not one this was checked on (use ``cache=False``).
    """
    import numba

    version = version or numba.__version__
    if not TESTED[0] <= _version(version) <= TESTED[1]:
        return _fallback(f"Numba {version} is outside the versions checked ({TESTED[0]} to {TESTED[1]})")
    from numba.core import caching, config

    if getattr(config, "CACHE_LOCATOR_CLASSES", None):
        return _fallback("NUMBA_CACHE_LOCATOR_CLASSES replaces the cache locators this module extends")
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    locators = getattr(impl, "_locator_classes", None)
    bases = [getattr(caching, name, None) or getattr(caching, "_" + name, None) for name in _BASES]
    if not isinstance(locators, list) or not all(base in locators for base in bases):
        return _fallback(f"Numba {version} keeps its cache locators elsewhere")
    paths = tuple(Path(p).resolve() for p in sources)
    for base in bases:
        if not any(getattr(c, "stamped_sources", None) == (base, paths[0]) for c in locators):
            locators.insert(locators.index(base), _stamped(base, paths))
    return True


def _stamped(base: type, paths: tuple[Path, ...]) -> type:
    class SourcesStampedLocator(base):
        """``base`` for the functions of ``paths[0]``, stamped with the contents of every file in ``paths``."""

        stamped_sources = (base, paths[0])

        @classmethod
        def from_function(cls, py_func, py_file):
            if Path(py_file).resolve() != paths[0]:
                return None
            return super().from_function(py_func, py_file)

        def get_source_stamp(self):
            digest = hashlib.sha256()
            for path in paths:
                digest.update(path.read_bytes())
            return digest.digest()

    return SourcesStampedLocator

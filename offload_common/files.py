"""Files the project writes and reads back: atomic writes, strict JSON, output-path checks, folder swaps, and
where the shared real data lives (``shared_data_dir``).

The one place where the project writes files safely; every package writes through it. Every result file is written
to a temporary name beside it and moved into place with ``os.replace`` (``atomic_path``), so a crash never leaves a
half-written file; a set of files (a report, a checkpoint folder) is built in a temporary folder and swapped in
whole (``atomic_folder``). JSON is written
strictly (``NaN`` and infinities become ``null``), because strict readers (browsers, ``jq``, most other languages)
reject the bare ``NaN`` that Python's ``json`` module writes by default. Output paths are checked before any long
work starts, naming the flag, so a bad ``--out`` fails in a second rather than after an hour of training.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SHARED_ENV = "OFFLOAD_GYM_SHARED"  # the whole shared-data folder (default: ../shared beside the project)


def shared_data_dir(subpath: str, override_env: str) -> Path | None:
    """A folder of the shared real data (read in place, never copied): ``$override_env``, else
    ``$OFFLOAD_GYM_SHARED/subpath``, else ``../shared/subpath`` beside the project root or the working directory;
    None when none of these exists (then the project runs on what it embeds)."""
    if os.environ.get(override_env):
        return Path(os.environ[override_env])
    roots = [Path(os.environ[SHARED_ENV])] if os.environ.get(SHARED_ENV) else []
    roots += [Path(__file__).resolve().parents[2] / "shared", Path.cwd().parent / "shared"]
    return next((r / subpath for r in roots if (r / subpath).is_dir()), None)


def strict_json(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, +-inf) replaced by ``None``, recursively (dicts, lists, tuples)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary file path beside ``path`` to write to; when the block ends without an error it replaces
    ``path`` (``os.replace``: readers see the old file or the new one), otherwise it is deleted.

    The temporary name ends with ``path``'s suffix, so writers that choose the format by suffix or append one when
    it is missing (``numpy.savez``, ``Figure.savefig``, stable-baselines3's ``save``) write exactly that file.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """A new temporary folder beside ``path`` to build a set of files in; when the block ends without an error it
    is swapped in as ``path`` whole (``swap_in_folder``), otherwise it is deleted."""
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    try:
        yield tmp
        swap_in_folder(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def staged_files(out_dir: str | os.PathLike, owns: Callable[[Path], bool]) -> Iterator[Path]:
    """A temporary folder beside ``out_dir`` to build a set of files that must agree (a report, a sweep); when the
    block ends without an error they are published together, otherwise nothing changes.

    A missing ``out_dir``, or one holding only entries of this kind (``owns(entry)``), is swapped in whole; in a folder
    that holds more (a run folder) each finished file replaces its old version and nothing else there is touched.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.build-"))
    try:
        yield build
        if not out_dir.exists() or all(owns(p) for p in out_dir.iterdir()):
            swap_in_folder(build, out_dir)
        else:
            for path in sorted(build.iterdir()):
                os.replace(path, out_dir / path.name)
    finally:
        shutil.rmtree(build, ignore_errors=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (``atomic_path``)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (``atomic_path``)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: str | os.PathLike, payload: Any) -> None:
    """Write ``payload`` as strict JSON (non-finite floats as ``null``), atomically."""
    atomic_write_text(path, json.dumps(strict_json(payload), indent=1, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Parse a JSON file; a missing or corrupt file raises an error naming the file, the position and the cause."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: {what} not found") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: {what} is not UTF-8 text (byte {exc.start}): the file is corrupt") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}:{exc.colno}: {what} is not valid JSON ({exc.msg}): the file is "
                         "corrupt or was cut short; restore it or start a new run") from None


def _probe_writable(folder: Path, flag: str, path: Path) -> None:
    """Create and delete a file in ``folder``: the only check that also holds for root and read-only mounts."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-probe-")
    except OSError as exc:
        raise ValueError(f"{flag} {path}: cannot write there: {folder} refuses new files ({exc.strerror})") from None
    os.close(fd)
    os.unlink(probe)


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def check_output_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Check that ``path`` can become (or already is) a writable folder; nothing is created.

    Raises ValueError naming ``flag`` when ``path`` is empty, is an existing file, or sits under a file or a folder
    this process cannot write to.
    """
    if str(path) == "":
        raise ValueError(f"{flag}: empty path; expected a folder")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path}: is an existing file; expected a folder (new or existing)")
    base = _nearest_existing(path)
    if not base.is_dir():
        raise ValueError(f"{flag} {path}: {base} is a file, so no folder can be made under it")
    _probe_writable(base, flag, path)
    return path


def check_output_file(path: str | os.PathLike, flag: str = "-o") -> Path:
    """Check that ``path`` can be written as a file (missing parent folders will be created); nothing is created.

    Raises ValueError naming ``flag`` when ``path`` is empty, is an existing folder, or its folder cannot be written.
    """
    if str(path) == "":
        raise ValueError(f"{flag}: empty path; expected a file path")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag} {path}: is a folder; expected a file path (e.g. {path / 'policy.onnx'})")
    check_output_dir(path.parent, flag)
    return path


def swap_in_folder(built: Path, final: Path) -> None:
    """Replace folder ``final`` by the completely written folder ``built`` (two renames on one file system).

    Readers see the old folder or the new one, never a mix; a crash between the renames leaves the old folder as
    ``<final>.old-*`` beside the new one, never a partial folder under ``final``'s name.
    """
    if not final.exists():
        os.replace(built, final)
        return
    old = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.old-"))
    os.replace(final, old / final.name)
    os.replace(built, final)
    shutil.rmtree(old, ignore_errors=True)

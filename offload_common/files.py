"""Files the project writes and reads back: atomic writes, strict JSON, output-path checks, folder swaps, the
record of what the project wrote, and where the shared real data lives (``shared_data_dir``).

The one place where the project writes files safely; every package writes through it. Every result file is written
to a temporary name beside it and moved into place with ``os.replace`` (``atomic_path``), so a crash never leaves a
half-written file; a set of files (a report, a checkpoint folder) is built in a temporary folder and swapped in
whole (``atomic_folder``, ``staged_files``). JSON is written
strictly (``NaN`` and infinities become ``null``), because strict readers (browsers, ``jq``, most other languages)
reject the bare ``NaN`` that Python's ``json`` module writes by default. Output paths are checked before any long
work starts, naming the flag, so a bad ``--out`` fails in a second rather than after an hour of training.

Outputs never destroy what they do not own:

* a result replaces only a regular file or a missing path: a device (``/dev/null``), a FIFO, a socket or a folder
  is refused, naming it (``check_output_file``, and again right before every ``os.replace``);
* a folder's ``MANIFEST`` (``.offload-gym-files.json``) records what the project wrote there; only those names are
  ever deleted or swapped away (``delete_recorded``, ``staged_files``), never anything found by a glob;
* results get the modes an ordinary ``open`` / ``mkdir`` gives (0644 / 0755 under umask 022), not ``mkstemp``'s
  0600 / 0700;
* temporaries carry their writer's PID (``.NAME.<pid>-XXXX.tmpSUFFIX``, ``.NAME.build-<pid>-XXXX``): the next write
  of the same target removes those of a writer that is gone (killed), and keeps a live one's.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
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


def path_kind(path: str | os.PathLike) -> str | None:
    """What ``path`` is, in words (``"a regular file"``, ``"a folder"``, ``"a FIFO (named pipe)"``, ...), or
    ``None`` when nothing is there. Symbolic links are followed (a dangling link counts as missing)."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):  # nothing there (or a file where a folder would have to be)
        return None
    for test, words in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a folder"),
                        (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                        (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return words
    return "a special file"


def check_replaceable(path: str | os.PathLike, flag: str | None = None) -> None:
    """Raise ValueError unless ``path`` is missing or a regular file: the only things a result may replace.

    A device (``/dev/null``), a FIFO, a socket or a folder is never replaced by a result file, even as root.
    """
    kind = path_kind(path)
    if kind is not None and kind != "a regular file":
        name = f"{flag} {path}" if flag else str(path)
        raise ValueError(f"{name}: is {kind}; results are only written to a regular file or a new path, so it is "
                         "left alone: choose another path")


def _check_folder_target(path: Path) -> None:
    """A folder result may replace only a folder or a missing path (never a file, FIFO or device)."""
    kind = path_kind(path)
    if kind is not None and kind != "a folder":
        raise ValueError(f"{path}: is {kind}; a folder of results is only written to a folder or a new path, so it "
                         "is left alone: choose another path")


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def publish_mode(path: str | os.PathLike, folder: bool = False) -> None:
    """Give ``path`` the mode an ordinary ``open`` / ``mkdir`` would (0644 / 0755 under umask 022): temporary
    names come from ``mkstemp`` / ``mkdtemp``, which create 0600 / 0700."""
    os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this machine (signal 0; one we may not signal exists too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _temp_prefix(name: str, kind: str) -> str:
    """The project's temporary name for ``name``: ``.NAME.KIND<pid>-`` (mkstemp / mkdtemp add a random part)."""
    return f".{name}.{kind}{os.getpid()}-"


def remove_stale_temporaries(path: str | os.PathLike, kinds: tuple[str, ...] = ("", "tmp-", "build-")) -> list[Path]:
    """Delete the temporaries that an earlier, killed writer of exactly ``path`` left beside it; returns them.

    Only names of the project's own temporary pattern for that target are touched (``.NAME.<pid>-XXXX.tmpSUFFIX``
    files, ``.NAME.tmp-<pid>-XXXX`` and ``.NAME.build-<pid>-XXXX`` folders, and the random-only names older code
    made), and only when the process that made them is gone, so a concurrent writer keeps its own.
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        return []
    removed = []
    name = re.escape(path.name)
    patterns = []
    for kind in kinds:
        if kind == "":  # atomic_path's files
            patterns.append(re.compile(rf"\.{name}\.(?:(\d+)-)?[a-z0-9_]+\.tmp{re.escape(path.suffix)}"))
        else:
            patterns.append(re.compile(rf"\.{name}\.{re.escape(kind)}(?:(\d+)-)?[a-z0-9_]+"))
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    for entry in entries:
        for pattern in patterns:
            match = pattern.fullmatch(entry.name)
            if match is None:
                continue
            if match.group(1) is not None and pid_alive(int(match.group(1))):
                break
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
            break
    return removed


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary file path beside ``path`` to write to; when the block ends without an error it replaces
    ``path`` (``os.replace``: readers see the old file or the new one), otherwise it is deleted.

    The temporary name ends with ``path``'s suffix, so writers that choose the format by suffix or append one when
    it is missing (``numpy.savez``, ``Figure.savefig``, stable-baselines3's ``save``) write exactly that file.
    ``path`` must be missing or a regular file, checked before and again right before the replace (a device or a
    FIFO is never replaced); the result gets an ordinary file's mode (0644 under umask 022); temporaries a killed
    earlier writer of ``path`` left are removed first.
    """
    path = Path(path)
    check_replaceable(path)
    remove_stale_temporaries(path, ("",))
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path.name, ""), suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.is_file():
            publish_mode(tmp)
        check_replaceable(path)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """A new temporary folder beside ``path`` to build a set of files in; when the block ends without an error it
    is swapped in as ``path`` whole (``swap_in_folder``), otherwise it is deleted."""
    path = Path(path)
    _check_folder_target(path)
    remove_stale_temporaries(path, ("tmp-",))
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temp_prefix(path.name, "tmp-")))
    try:
        yield tmp
        publish_mode(tmp, folder=True)
        swap_in_folder(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def staged_files(out_dir: str | os.PathLike, owns: Callable[[Path], bool]) -> Iterator[Path]:
    """A temporary folder beside ``out_dir`` to build a set of files that must agree (a report, a sweep); when the
    block ends without an error they are published together, otherwise nothing changes.

    A missing ``out_dir``, or one holding only entries of this kind (``owns(entry)``) that the project recorded in
    its manifest (``MANIFEST``), is swapped in whole; in a folder that holds more (a run folder, a user's own files)
    each finished file replaces its old version, recorded entries of this kind that the new set lacks are deleted,
    and nothing else there is touched. The published names are recorded in the folder's manifest. Build folders a
    killed earlier writer of ``out_dir`` left are removed first.
    """
    out_dir = Path(out_dir)
    _check_folder_target(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir, ("build-",))
    build = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=_temp_prefix(out_dir.name, "build-")))
    try:
        yield build
        publish_mode(build, folder=True)
        built = sorted(p.name for p in build.iterdir())
        recorded = recorded_files(out_dir)
        entries = [p for p in out_dir.iterdir() if p.name != MANIFEST] if out_dir.is_dir() else []
        if not out_dir.exists() or all(p.name in recorded and owns(p) for p in entries):
            _write_manifest(build, set(built))
            swap_in_folder(build, out_dir)
        else:
            for name in built:
                check_replaceable(out_dir / name)
            for name in built:
                os.replace(build / name, out_dir / name)
            stale = [n for n in recorded if n not in built and owns(out_dir / n)]
            record_files(out_dir, built)
            delete_recorded(out_dir, stale)
    finally:
        shutil.rmtree(build, ignore_errors=True)


# the hidden record of what the project wrote into a folder: only names listed here are ever deleted
MANIFEST = ".offload-gym-files.json"


def _manifest_names(folder: Path, payload: Any) -> set[str]:
    files = payload.get("files") if isinstance(payload, dict) else None
    if not isinstance(files, list) or not all(isinstance(n, str) for n in files):
        raise ValueError(f"{folder / MANIFEST}: the record of the files offload-gym wrote here is not "
                         '{"files": [names]}: the file is corrupt; delete it (then nothing in the folder counts as '
                         "written by offload-gym)")
    # only plain names directly in the folder: a manifest never reaches outside it
    return {n for n in files if n and "/" not in n and os.sep not in n and n not in (".", "..", MANIFEST)}


def recorded_files(folder: str | os.PathLike) -> set[str]:
    """The names (files or folders directly in ``folder``) the project recorded writing there; empty if none."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        return set()
    return _manifest_names(folder, read_json(folder / MANIFEST, "offload-gym file record"))


def _write_manifest(folder: Path, names: set[str]) -> None:
    write_json(folder / MANIFEST, {"files": sorted(names), "note": "files and folders offload-gym wrote here; "
                                   "it deletes or replaces only these"})


def record_files(folder: str | os.PathLike, names: Iterable[str]) -> None:
    """Add ``names`` (written directly in ``folder``) to the folder's manifest."""
    folder = Path(folder)
    names = set(names)
    old = recorded_files(folder)
    if not names <= old:
        _write_manifest(folder, old | names)


def delete_recorded(folder: str | os.PathLike, names: Iterable[str] | None = None) -> list[str]:
    """Delete what the manifest of ``folder`` lists (only ``names`` among it, when given) and forget it; anything
    the project did not record is left alone. Returns the names deleted."""
    folder = Path(folder)
    recorded = recorded_files(folder)
    doomed = sorted(recorded if names is None else recorded & set(names))
    for name in doomed:
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    if doomed:
        _write_manifest(folder, recorded - set(doomed))
    return doomed


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


def read_json_object(path: str | os.PathLike, what: str, required: dict[str, type | tuple[type, ...]] | None = None,
                     hint: str = "restore it or start a new run") -> dict[str, Any]:
    """``read_json`` of a file that must hold a JSON object with the ``required`` keys of the given types; anything
    else raises ValueError naming the file, the key and what was expected."""
    value = read_json(path, what)
    if not isinstance(value, dict):
        raise ValueError(f"{path}: {what} holds a JSON {type(value).__name__} ({json.dumps(value)[:60]}), expected "
                         f"an object {{...}}: the file is corrupt or not offload-gym's; {hint}")
    for key, kind in (required or {}).items():
        if key not in value:
            raise ValueError(f"{path}: {what} has no {key!r}: the file is corrupt or was written by other code; "
                             f"{hint}")
        if not isinstance(value[key], kind) or isinstance(value[key], bool) and bool not in (
                kind if isinstance(kind, tuple) else (kind,)):
            names = "/".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise ValueError(f"{path}: {what}'s {key!r} is {json.dumps(value[key])[:60]}, expected {names}: the file "
                             f"is corrupt; {hint}")
    return value


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
    kind = path_kind(path)
    if kind is not None and kind != "a folder":
        what = "an existing file" if kind == "a regular file" else kind
        raise ValueError(f"{flag} {path}: is {what}; expected a folder (new or existing)")
    base = _nearest_existing(path)
    if not base.is_dir():
        raise ValueError(f"{flag} {path}: {base} is a file, so no folder can be made under it")
    _probe_writable(base, flag, path)
    return path


def check_output_file(path: str | os.PathLike, flag: str = "-o") -> Path:
    """Check that ``path`` can be written as a file (missing parent folders will be created); nothing is created.

    Raises ValueError naming ``flag`` when ``path`` is empty, is an existing folder or anything else that is not a
    regular file (a device such as ``/dev/null``, a FIFO, a socket: a result never replaces one), or its folder
    cannot be written.
    """
    if str(path) == "":
        raise ValueError(f"{flag}: empty path; expected a file path")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag} {path}: is a folder; expected a file path (e.g. {path / 'policy.onnx'})")
    check_replaceable(path, flag)
    check_output_dir(path.parent, flag)
    return path


def check_input_path(path: str | os.PathLike, flag: str, kind: str, what: str) -> Path:
    """``path`` as an existing input of ``kind`` (``"file"``, ``"folder"`` or ``"either"``); otherwise an error that
    names ``flag``, says what ``path`` is and what was expected (``what``, e.g. "a frame profile .npz file").

    Raises FileNotFoundError when nothing is there and ValueError for the wrong kind (a folder for a file, a file for
    a folder, or a FIFO, device or socket, which would block or never end when read).
    """
    path = Path(path)
    found = path_kind(path)
    if found is None:
        raise FileNotFoundError(f"{flag} {path}: does not exist; expected {what}")
    ok = {"file": ("a regular file",), "folder": ("a folder",), "either": ("a regular file", "a folder")}[kind]
    if found not in ok:
        raise ValueError(f"{flag} {path}: is {found}; expected {what}")
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

"""Run files: versioned JSON under results/runs/, written atomically, loaded to pandas.

Nothing is lost: a run file is published under a name no other file has (a hard link,
which fails instead of replacing), so processes saving in the same second each keep their
file; a corrupt run file is skipped with a warning naming it, not a reason to read nothing.
"""
from __future__ import annotations

import errno
import json
import math
import os
import tempfile
import time
import warnings
from pathlib import Path

SCHEMA = "convbench-run"
VERSION = 1
RUNS_DIR = Path(__file__).resolve().parent.parent / "results" / "runs"

# os.link's errors meaning "this file system has no hard links", not "the disk is full"
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK}


def check_writable(path, what: str, *, folder: bool = False) -> Path:
    """``path`` as a Path when a file can be written there (``folder=True``: files can be
    written inside the folder ``path``), else a ValueError naming ``what`` and the reason.
    Nothing is created: the nearest existing folder above must accept a new file, so a
    long measurement does not end in a write that was never possible."""
    path = Path(path).expanduser()
    target_dir = path if folder else path.parent
    if not folder and path.is_dir():
        raise ValueError(f"{what} {path} is a folder; give a file path")
    if folder and path.exists() and not path.is_dir():
        raise ValueError(f"{what} {path} is a file; give a folder")
    existing = target_dir
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{what} {path}: {existing} is a file, so the folder cannot be created")
    try:  # a real probe: os.access answers "yes" to root on a read-only file system
        fd, probe = tempfile.mkstemp(prefix=".convbench-probe.", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"{what} {path}: cannot write in {existing} ({exc.strerror or exc})") from None
    return path


def _write_temp(folder: Path, name: str, text: str) -> str:
    """A complete, flushed temporary file in ``folder`` (removed again if writing fails)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide run files from other users
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename: never half-written."""
    path = Path(path)
    tmp = _write_temp(path.parent, path.name, text)
    try:
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _publish_new(tmp: str, path: Path) -> bool:
    """Give the finished ``tmp`` the name ``path`` unless a file has it: True when published.
    The check and the naming are one step, so two writers never take the same name."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        try:  # no hard links here: reserve the name exclusively, then fill it atomically
            with open(path, "x"):
                pass
        except FileExistsError:
            return False
        try:
            os.replace(tmp, path)
        except BaseException:
            os.unlink(path)
            raise
        return True
    os.unlink(tmp)
    return True


def save_run(rows: list[dict], *, suite: str, machine: dict, protocol: dict, command: str,
             directory: Path | None = None) -> Path:
    """Write a run file named ``<UTC time>-<suite>[-<n>].json`` in ``directory`` (default
    results/runs); an existing file is never replaced, a concurrent writer never loses its."""
    directory = Path(directory) if directory else RUNS_DIR
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    doc = {"schema": SCHEMA, "version": VERSION, "created": stamp, "suite": suite,
           "command": command, "machine": machine, "protocol": protocol, "rows": rows}
    text = json.dumps(_finite(doc), indent=1, default=_jsonable, allow_nan=False) + "\n"
    tmp = _write_temp(directory, f"{stamp}-{suite}.json", text)
    try:
        n = 1
        while True:
            path = directory / (f"{stamp}-{suite}.json" if n == 1 else f"{stamp}-{suite}-{n}.json")
            if _publish_new(tmp, path):
                return path
            n += 1
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _finite(value):
    """NaN/inf become null: run files are strict JSON (jq, JavaScript read them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and not hasattr(value, "__len__"):
        return _finite(value.item())
    return value


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def load_run(path) -> dict:
    """The run file at ``path``; a ValueError naming the file when it is not one (unreadable,
    not JSON, another schema or version, keys missing)."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a readable run file ({type(exc).__name__}: {exc})") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        schema = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise ValueError(f"{path} is not a convbench run file (schema {schema!r})")
    if doc.get("version") != VERSION:
        raise ValueError(f"{path} has run-file version {doc.get('version')}; this convbench reads {VERSION}")
    problems = [f"{key!r} is not {kind.__name__}" for key, kind in
                (("suite", str), ("created", str), ("machine", dict), ("rows", list))
                if not isinstance(doc.get(key), kind)]
    if not problems and not all(isinstance(row, dict) for row in doc["rows"]):
        problems.append("a row is not an object")
    if problems:
        raise ValueError(f"{path} is a corrupt run file: {'; '.join(problems)}")
    return doc


def load_runs(paths) -> list[tuple[Path, dict]]:
    """(path, document) of every readable run file among ``paths``; each one that is not
    readable is skipped with a warning naming it, so one bad file hides no other."""
    loaded = []
    for path in paths:
        try:
            loaded.append((Path(path), load_run(path)))
        except ValueError as exc:
            warnings.warn(f"skipped {exc}", stacklevel=2)
    return loaded


def load_frame(paths=None):
    """Rows of one or more run files as a pandas DataFrame (one row per case x candidate),
    with the run's file name, suite, time and host as columns. Default: every run file.
    A corrupt file is skipped with a warning naming it (see load_runs)."""
    if paths is None:
        paths = sorted(RUNS_DIR.glob("*.json"))
    elif isinstance(paths, (str, Path)):
        paths = [paths]
    return runs_frame(load_runs(paths))


def runs_frame(runs: list[tuple[Path, dict]]):
    """The DataFrame of load_frame from documents already loaded (load_runs)."""
    import pandas as pd

    frames = []
    for path, doc in runs:
        frame = pd.DataFrame(doc["rows"])
        frame["run"] = path.name
        frame["suite"] = doc["suite"]
        frame["created"] = doc["created"]
        frame["host"] = doc["machine"].get("hostname")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

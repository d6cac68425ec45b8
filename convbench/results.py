"""Run files: versioned JSON under results/runs/, written atomically, loaded to pandas."""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path

SCHEMA = "convbench-run"
VERSION = 1
RUNS_DIR = Path(__file__).resolve().parent.parent / "results" / "runs"


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename: never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide run files from other users
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_run(rows: list[dict], *, suite: str, machine: dict, protocol: dict, command: str,
             directory: Path | None = None) -> Path:
    directory = Path(directory) if directory else RUNS_DIR
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = directory / f"{stamp}-{suite}.json"
    n = 1
    while path.exists():
        n += 1
        path = directory / f"{stamp}-{suite}-{n}.json"
    doc = {"schema": SCHEMA, "version": VERSION, "created": stamp, "suite": suite,
           "command": command, "machine": machine, "protocol": protocol, "rows": rows}
    write_atomic(path, json.dumps(_finite(doc), indent=1, default=_jsonable, allow_nan=False) + "\n")
    return path


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
    with open(path) as f:
        doc = json.load(f)
    if doc.get("schema") != SCHEMA:
        raise ValueError(f"{path} is not a convbench run file (schema {doc.get('schema')!r})")
    if doc.get("version") != VERSION:
        raise ValueError(f"{path} has run-file version {doc.get('version')}; this convbench reads {VERSION}")
    return doc


def load_frame(paths=None):
    """Rows of one or more run files as a pandas DataFrame (one row per case x candidate),
    with the run's file name, suite, time and host as columns. Default: every run file."""
    import pandas as pd

    if paths is None:
        paths = sorted(RUNS_DIR.glob("*.json"))
    elif isinstance(paths, (str, Path)):
        paths = [paths]
    frames = []
    for path in paths:
        doc = load_run(path)
        frame = pd.DataFrame(doc["rows"])
        frame["run"] = Path(path).name
        frame["suite"] = doc["suite"]
        frame["created"] = doc["created"]
        frame["host"] = doc["machine"].get("hostname")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

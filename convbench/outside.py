"""Candidates from other installed packages: the ``convbench.candidates`` entry-point group.

A package adds candidates by declaring, in its pyproject.toml::

    [project.entry-points."convbench.candidates"]
    "correlate.windowed_numpy" = "mypackage.windowed_numpy"

The entry's name is ``<op>.<candidate name>``, the candidate name ``<algorithm>_<library>``;
its value is a module following the candidate contract of ``candidates/__init__.py``. They
are listed, verified, timed and gated like convbench's own (a correlate candidate also runs
convolve and gaussian, as ours do). The default choice does not pick them: its preference
lists and packaged table name convbench's own only (a table measured here by
``convbench tune`` ranks every verified candidate, theirs too).

An entry that cannot be used (a bad name, an unknown op, a name convbench or an earlier
package already uses for that op, a module that cannot be imported or misses part of the
contract) is left out with one warning naming the package and the entry: an installed
package never breaks convbench.
"""
from __future__ import annotations

import functools
import importlib
import re
import warnings
from dataclasses import dataclass
from importlib import metadata

GROUP = "convbench.candidates"
NAME = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+")   # <algorithm>_<library>


class OutsideCandidateWarning(UserWarning):
    """An entry of the convbench.candidates group that was left out, and why."""


@dataclass(frozen=True)
class Entry:
    op: str
    name: str
    module: str     # dotted path of the candidate module
    package: str    # the distribution that declares it


@functools.lru_cache(maxsize=1)
def candidates() -> dict[str, dict[str, Entry]]:
    """op -> candidate name -> Entry, for every usable entry of every installed package
    (read once per process; ``candidates.cache_clear()`` reads again)."""
    try:
        found = sorted(metadata.entry_points(group=GROUP), key=lambda e: (_package(e), e.name))
    except Exception as exc:  # a broken installation must not break convbench
        _warn(f"the installed packages' {GROUP} entry points cannot be read "
              f"({type(exc).__name__}: {exc}); none is used")
        return {}
    out: dict[str, dict[str, Entry]] = {}
    for entry in found:
        op, _, name = entry.name.partition(".")
        problem = _problem(op, name, entry.value, out)
        if problem:
            _warn(f"left out candidate {entry.name!r} = {entry.value!r} of package "
                  f"{_package(entry)!r} (entry-point group {GROUP}): {problem}")
            continue
        out.setdefault(op, {})[name] = Entry(op, name, entry.value, _package(entry))
    return out


def _package(entry) -> str:
    dist = getattr(entry, "dist", None)
    return dist.name if dist is not None else "?"


def _warn(message: str) -> None:
    warnings.warn(f"convbench: {message}", OutsideCandidateWarning, stacklevel=2)


def _problem(op: str, name: str, module_path: str, accepted: dict) -> str | None:
    """Why this entry cannot be used, or None."""
    from convbench import registry

    if not op or not name or "." in name:
        return "an entry's name must be '<op>.<candidate name>'"
    if op not in registry.ops():
        return f"unknown op {op!r}; accepted: {', '.join(registry.ops())}"
    if not NAME.fullmatch(name):
        return (f"candidate name {name!r} is not '<algorithm>_<library>' (lower-case letters "
                "and digits joined by underscores, e.g. windowed_numpy)")
    ours = set(registry.CANDIDATES.get(op, {})) | set(registry.CANDIDATES.get(registry.REUSED.get(op), {}))
    if name in ours:
        return f"convbench already has a {op} candidate named {name!r} (ours keep the name)"
    if name in accepted.get(op, {}):
        return f"package {accepted[op][name].package!r} already adds {op}.{name}"
    try:
        module = importlib.import_module(module_path)
    except (Exception, SystemExit) as exc:  # an import must not end convbench
        return f"module {module_path!r} cannot be imported ({type(exc).__name__}: {exc})"
    return contract_problem(module, op)


def contract_problem(module, op: str) -> str | None:
    """What the module lacks of the candidate contract (candidates/__init__.py) for op."""
    from convbench.tolerance import MODELS

    if not isinstance(getattr(module, "LIBRARY", None), str):
        return "LIBRARY (the package it needs, a string) is missing"
    if getattr(module, "DEVICE", None) not in ("cpu", "gpu"):
        return f"DEVICE must be 'cpu' or 'gpu', got {getattr(module, 'DEVICE', None)!r}"
    error = getattr(module, "ERROR", None)
    if not callable(error) and error not in MODELS:
        return f"ERROR must be one of the error models {MODELS} or a function, got {error!r}"
    for function in ("supports", op):
        if not callable(getattr(module, function, None)):
            return f"the function {function}() is missing"
    if not isinstance(getattr(module, "NONFINITE", False), bool):
        return "NONFINITE must be True or False"
    bits = getattr(module, "EXACT_INT_BITS", 0)
    if not (callable(bits) or (isinstance(bits, int) and not isinstance(bits, bool))):
        return f"EXACT_INT_BITS must be an int or a function, got {bits!r}"
    return None

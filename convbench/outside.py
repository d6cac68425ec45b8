"""Candidates from other installed packages: the ``convbench.candidates`` entry-point group.

A package adds candidates by declaring, in its pyproject.toml::

    [project.entry-points."convbench.candidates"]
    "correlate.windowed_numpy" = "mypackage.windowed_numpy"

The entry's name is ``<op>.<candidate name>``; its value is a module following the
candidate contract of ``candidates/__init__.py``. They are listed, verified, timed and
gated like convbench's own; a name convbench already uses for that op is refused with a
warning (ours keep their meaning).
"""
from __future__ import annotations

import functools
import warnings
from importlib import metadata

GROUP = "convbench.candidates"


@functools.lru_cache(maxsize=1)
def candidates() -> dict[str, dict[str, str]]:
    """op -> candidate name -> module path, from every installed package's entry points."""
    out: dict[str, dict[str, str]] = {}
    for entry in metadata.entry_points(group=GROUP):
        op, _, name = entry.name.partition(".")
        if not op or not name:
            warnings.warn(f"ignoring entry point {entry.name!r} = {entry.value!r} of group "
                          f"{GROUP}: its name must be '<op>.<candidate name>'", stacklevel=2)
            continue
        out.setdefault(op, {})[name] = entry.value
    return out

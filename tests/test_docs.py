"""The repository stands alone: every repo file that a project file cites exists, and no
project file cites documents kept outside the repository (what users need is in README.md,
what contributors need in CONTRIBUTING.md, measured figures in results/README.md).

A citation is a path under one of the top-level folders (``convbench/tolerance.py``,
``results/runs/``) anywhere in a document or in a module's text, or a file name
(``README.md``, ``ops/conv.py``) in prose: documents, comments and docstrings (code strings
also name temporary files). A path resolves from the repository root or from a folder
between the citing file and the root; a bare file name may be any repository file of that
name. Templates (``convbench/ops/<family>.py``, f-strings) are skipped, globs must match.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ("README.md", "CONTRIBUTING.md", "results/README.md", ".ci/run", "pyproject.toml")
PACKAGES = ("convbench", "refimpl", "candidates", "suites", "tests")
OUTSIDE = tuple(name + ".md" for name in ("DESIGN", "WORKLOADS", "PEERS"))

_TOP = r"(?:refimpl|candidates|convbench|suites|tests|results|\.ci)"
_BEFORE = r"(?<![\w./~$-])"      # not the tail of a longer path, a home or a URL
FOLDER_PATH = re.compile(_BEFORE + r"(" + _TOP + r"/[\w./*-]*)")
FILE_NAME = re.compile(_BEFORE + r"((?:[\w-]+/)*[\w.-]*\w\.(?:py|md|json|toml))(?![\w/])")


def citing_files() -> list[Path]:
    """The documents and every module, but this one (its strings are planted citations)."""
    found = [ROOT / name for name in DOCUMENTS]
    for folder in PACKAGES:
        found += sorted(p for p in (ROOT / folder).rglob("*.py")
                        if "__pycache__" not in p.parts and "build" not in p.parts)
    this = Path(__file__).resolve()
    return [p for p in found if p.resolve() != this]


# A comment, or a string literal with its prefix: enough of Python's lexer to tell prose
# from code (a '#' or a quote inside a string is part of the string).
_LEXEME = re.compile(r"""(?P<comment>#[^\n]*)"""
                     r"""|(?P<prefix>[rRbBuUfF]{0,2})(?P<q>'''|\"\"\"|'|")(?:[^\\]|\\.)*?(?P=q)""",
                     re.S)


def python_texts(source: str) -> tuple[str, str]:
    """(prose, code strings) of a module. Prose: comments, and strings that do not follow
    an operator or an opening bracket (docstrings); f-strings are templates
    (f"tests/test_{family}.py") and left out."""
    prose, strings = [], []
    for m in _LEXEME.finditer(source):
        if m.group("comment"):
            prose.append(m.group())
        elif "f" not in m.group("prefix").lower():
            i = m.start() - 1
            while i >= 0 and source[i].isspace():
                i -= 1
            (strings if i >= 0 and source[i] in "([{,=+%*/<>|&^-" else prose).append(m.group())
    return "\n".join(prose), "\n".join(strings)


def citations(text: str, prose: bool) -> set[str]:
    found = set()
    for pattern in (FOLDER_PATH, FILE_NAME) if prose else (FOLDER_PATH,):
        for m in pattern.finditer(text):
            ref = m.group(1).rstrip(".")
            if "<" in ref or text[m.end():m.end() + 1] in ("<", "{"):
                continue  # a template: convbench/ops/<family>.py
            found.add(ref)
    return found


def _repo_files() -> list[str]:
    """Tracked files and new ones git does not ignore."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, capture_output=True, text=True)
    return out.stdout.split() if out.returncode == 0 else []


REPO_FILES = _repo_files()
TRACKED_NAMES = {Path(p).name for p in REPO_FILES}


def _ignored(ref: str) -> bool:
    """A build output the repository ignores on purpose (results/html: asv publish)."""
    out = subprocess.run(["git", "check-ignore", ref, ref.rstrip("/") + "/"],
                         cwd=ROOT, capture_output=True)
    return out.returncode == 0


def resolves(ref: str, citing: Path) -> bool:
    if "*" in ref:
        return any(ROOT.glob(ref)) or any(citing.parent.glob(ref))
    bases = [ROOT] + [p for p in citing.parents if p != ROOT and ROOT in p.parents]
    if any((base / ref).exists() for base in bases):
        return True
    if "/" not in ref and ref in TRACKED_NAMES:
        return True
    return _ignored(ref)


def unresolved(citing: Path, text: str | None = None) -> list[str]:
    """The citations in ``citing`` (or in ``text``, read as that file's) that name no file."""
    text = citing.read_text() if text is None else text
    if citing.suffix == ".py":
        prose, strings = python_texts(text)
        refs = citations(prose, prose=True) | citations(strings, prose=False)
    else:
        refs = citations(text, prose=True)
    return sorted(r for r in refs if not resolves(r, citing))


def test_every_cited_file_exists():
    missing = [f"{p.relative_to(ROOT)}: {ref}" for p in citing_files() for ref in unresolved(p)]
    assert not missing, "cited but not in the repository:\n  " + "\n  ".join(missing)


def test_citations_are_found_and_checked():
    citing = ROOT / "convbench" / "example.py"   # read as a module there; need not exist
    source = '''"""Bounds in convbench/tolerance.py and ops/conv.py; see CONTRIBUTING.md and
    README.md. The record: convbench/ops/<family>.py. Gone: refimpl/nonexistent.py."""
# comment: results/runs/*.json, candidates/correlate/, tests/test_nothing_here.py
PATH = "suites/missing.py"
TEMPLATE = f"tests/test_{name}.py"
TEMP = "scratch.json"   # a code string that is not a path under a top-level folder
'''
    assert unresolved(citing, source) == ["refimpl/nonexistent.py", "suites/missing.py",
                                          "tests/test_nothing_here.py"]
    assert unresolved(ROOT / "results" / "README.md", "run `runs/nope.json`, `README.md`") \
        == ["runs/nope.json"]


@pytest.mark.parametrize("name", OUTSIDE)
def test_no_file_cites_documents_outside_the_repository(name):
    files = citing_files() + [ROOT / p for p in REPO_FILES if not p.startswith("results/")
                              and p.endswith((".md", ".toml", ".json", ".cfg", ".txt"))]
    files += [ROOT / p for p in REPO_FILES if p.startswith(".ci/")]
    citing = sorted({str(p.relative_to(ROOT)) for p in files
                     if p.is_file() and name in p.read_text()})
    assert not citing, f"{name} is not in the repository; say the fact itself or point to " \
                       f"README.md / CONTRIBUTING.md instead: {citing}"

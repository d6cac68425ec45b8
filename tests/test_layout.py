"""The project's shape: top-level folders, one stem per operation family, candidate
module contract, one-way dependencies, shared candidate code in its homes, and banned
flag names.

Imports are checked by parsing with ``ast`` (nothing under test is imported for that), so a
module that would import torch or cupy at the top is caught on any machine.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from convbench import registry

ROOT = Path(__file__).resolve().parent.parent
STDLIB = set(sys.stdlib_module_names)
FAMILIES = sorted(p.name for p in (ROOT / "candidates").iterdir()
                  if p.is_dir() and (p / "__init__.py").exists())
# the <library> suffix of a candidate's stem -> the LIBRARY it declares
LIBRARY_OF_SUFFIX = {"numpy": "numpy", "scipy": "scipy", "opencv": "cv2", "torch": "torch",
                     "cupy": "cupy", "numba": "numba", "triton": "triton", "ducc": "ducc0"}
# asv suites that time the library itself rather than one op family's candidates
HARNESS_SUITES = {"dispatch", "nn_bench", "training", "dask"}
REFIMPL_ALLOWED_FROM_CANDIDATES = {"refimpl.geometry", "refimpl.pad", "refimpl.dtypes"}
# what candidates of every family share (plain modules under candidates/, no op family)
SHARED_HOMES = {"candidates.runtime", "candidates.torch_support", "candidates.triton_support"}


def py_files(folder: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def imports(path: Path, module_level_only: bool = False) -> list[tuple[int, str]]:
    """(line, dotted module) for every import in ``path``; ``from a import b`` yields
    'a.b' (b may be a module or a name: both forms are checked by prefix). Relative imports
    are resolved against the file's package. With ``module_level_only``, imports inside
    function bodies (lazy imports) are left out."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = []

    def visit(node, in_function):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            in_function = True
        if not (module_level_only and in_function):
            if isinstance(node, ast.Import):
                found.extend((node.lineno, a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(p for p in parts + [base] if p)
                if base == "__future__":
                    found.append((node.lineno, base))
                else:
                    found.extend((node.lineno, f"{base}.{a.name}") for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child, in_function)

    visit(tree, False)
    return found


def root(module: str) -> str:
    return module.split(".")[0]


# ----------------------------------------------------------------------- top-level layout


@pytest.mark.parametrize("item", ["refimpl/", "candidates/", "convbench/", "suites/", "tests/",
                                  "results/", "results/README.md", "pyproject.toml",
                                  "README.md", ".ci/run", "asv.conf.json"])
def test_top_level_layout(item):
    path = ROOT / item
    if item.endswith("/"):
        assert path.is_dir(), f"{item} is missing"
        assert any(path.iterdir()), f"{item} is empty"
    else:
        assert path.is_file(), f"{item} is missing"


def test_ci_run_is_executable():
    import os

    assert os.access(ROOT / ".ci" / "run", os.X_OK)
    assert (ROOT / ".ci" / "run").read_text().startswith("#!")


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme, re.S)
    readme_cmds = [line.strip() for b in blocks for line in b.splitlines()
                   if "python -m pytest" in line]
    ci_cmds = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
               if "python -m pytest" in line and not line.lstrip().startswith("#")]
    assert readme_cmds, "README has no test command"
    assert ci_cmds == readme_cmds[:1], (ci_cmds, readme_cmds)


def test_asv_conf_points_at_suites_and_results():
    text = (ROOT / "asv.conf.json").read_text()
    conf = json.loads("\n".join(line for line in text.splitlines()
                                if not line.lstrip().startswith("//")))
    assert conf["benchmark_dir"] == "suites"
    assert conf["results_dir"] == "results/asv"
    assert conf["html_dir"] == "results/html"


def test_console_script():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["convbench"] == "convbench.cli:main"


# -------------------------------------------------------------- one stem per op family


@pytest.mark.parametrize("family", FAMILIES)
def test_family_stem_everywhere(family):
    expected = [f"refimpl/{family}.py", f"candidates/{family}/__init__.py",
                f"convbench/ops/{family}.py", f"convbench/cases/{family}.py",
                f"suites/{family}.py", f"tests/test_{family}.py"]
    missing = [p for p in expected if not (ROOT / p).is_file()]
    assert not missing, f"family {family!r}: missing {missing}"


def test_families_known():
    assert {"correlate", "conv", "pool"} <= set(FAMILIES)
    for folder in ("suites", "convbench/ops", "convbench/cases"):
        stems = {p.stem for p in (ROOT / folder).glob("*.py") if p.stem != "__init__"}
        if folder == "suites":
            stems -= HARNESS_SUITES
        assert stems <= set(FAMILIES), f"{folder}: {sorted(stems - set(FAMILIES))} is no family"


def registered_modules() -> dict[str, list[str]]:
    """module path -> ops it is registered under."""
    out: dict[str, list[str]] = {}
    for op, names in registry.CANDIDATES.items():
        for path in names.values():
            out.setdefault(path, []).append(op)
    return out


def test_registry_names_are_file_stems():
    for op, names in registry.CANDIDATES.items():
        for name, path in names.items():
            parts = path.split(".")
            assert len(parts) == 3 and parts[0] == "candidates" and parts[1] in FAMILIES, path
            assert parts[2] == name, f"{op}/{name} is registered as {path}"
            assert re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)*_(%s)" % "|".join(LIBRARY_OF_SUFFIX), name), \
                f"{name}: stems are <algorithm>_<library>, library one of {sorted(LIBRARY_OF_SUFFIX)}"
    # an op that reuses another's candidates only adds modules of its own family
    for op, source in registry.REUSED.items():
        assert source in registry.CANDIDATES and op != source


def test_every_candidate_file_is_registered():
    registered = set(registered_modules())
    for family in FAMILIES:
        for path in (ROOT / "candidates" / family).glob("*.py"):
            if path.stem == "__init__":
                continue
            assert f"candidates.{family}.{path.stem}" in registered, \
                f"{rel(path)} is not in convbench.registry.CANDIDATES"


def test_every_registered_module_exists():
    missing = [p for p in registered_modules()
               if not (ROOT / (p.replace(".", "/") + ".py")).is_file()]
    assert not missing


# ---------------------------------------------------------------- candidate module contract


def existing_modules():
    for path, ops in registered_modules().items():
        file = ROOT / (path.replace(".", "/") + ".py")
        marks = () if file.is_file() else (pytest.mark.skip(reason=f"{rel(file)} not written yet"),)
        yield pytest.param(path, ops, id=path.split(".", 1)[1], marks=marks)


@pytest.mark.parametrize("path,ops", list(existing_modules()))
def test_candidate_header(path, ops):
    file = ROOT / (path.replace(".", "/") + ".py")
    lines = file.read_text().splitlines()
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line)
    stem = file.stem
    assert header and header[0].startswith(f"# {stem}:"), \
        f"{rel(file)} must start with a '# {stem}: <algorithm>' comment block"
    text = "\n".join(header).lower()
    # algorithm (first line), where it wins, where it does (not) apply, numerical behaviour
    for section in ("wins", "does not win", "appl", "numerics"):
        assert section in text, f"{rel(file)}: header has no '{section}' part"
    assert len(header) >= 5


@pytest.mark.parametrize("path,ops", list(existing_modules()))
def test_candidate_contract(path, ops):
    from convbench.ops import all_ops

    module = importlib.import_module(path)
    suffix = path.rsplit("_", 1)[1]
    assert module.LIBRARY == LIBRARY_OF_SUFFIX[suffix], (path, module.LIBRARY)
    assert module.DEVICE in ("cpu", "gpu")
    from convbench.tolerance import MODELS

    assert module.ERROR in MODELS or callable(module.ERROR)
    assert callable(module.supports)
    assert list(inspect.signature(module.supports).parameters) == ["spec"]
    assert isinstance(getattr(module, "NONFINITE", False), bool)
    bits = getattr(module, "EXACT_INT_BITS", 0)
    assert callable(bits) or (isinstance(bits, int) and 0 <= bits <= 63), (path, bits)
    for op in ops:
        fn = getattr(module, op, None)
        assert callable(fn), f"{path} is registered for {op} but defines no function {op}()"
        if op not in all_ops():
            continue
        params = inspect.signature(fn).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        for key, _ in all_ops()[op].defaults:  # the harness passes these by keyword
            assert takes_any or key in params, f"{path}.{op}() does not take {key}="


# ---------------------------------------------------------------- one-way dependencies


@pytest.mark.parametrize("file", py_files("refimpl"), ids=rel)
def test_refimpl_imports_numpy_only(file):
    for line, module in imports(file):
        assert root(module) in STDLIB | {"numpy", "refimpl"}, \
            f"{rel(file)}:{line} imports {module}; refimpl imports numpy and the stdlib only"


@pytest.mark.parametrize("file", py_files("candidates"), ids=rel)
def test_candidates_imports(file):
    for line, module in imports(file):
        where = f"{rel(file)}:{line} imports {module}"
        assert root(module) not in ("convbench", "suites"), f"{where}; candidates never import it"
        if root(module) == "refimpl":
            assert any(module == m or module.startswith(m + ".")
                       for m in REFIMPL_ALLOWED_FROM_CANDIDATES), \
                f"{where}; candidates use only {sorted(REFIMPL_ALLOWED_FROM_CANDIDATES)}"
    for line, module in imports(file, module_level_only=True):
        assert root(module) in STDLIB | {"numpy", "refimpl", "candidates"}, \
            f"{rel(file)}:{line} imports {module} at module level; import libraries inside functions"


def test_shared_homes_are_the_plain_modules_under_candidates():
    plain = {f"candidates.{p.stem}" for p in (ROOT / "candidates").glob("*.py") if p.stem != "__init__"}
    assert plain == SHARED_HOMES


def _candidate_module_names(file: Path) -> dict[str, str]:
    """Local name -> candidate module, for every candidate module ``file`` imports whole
    (``from candidates.conv import conv_torch as _portable``, ``import candidates.x.y``)."""
    names = {}
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("candidates"):
            for a in node.names:
                target = f"{node.module}.{a.name}"
                if (ROOT / (target.replace(".", "/") + ".py")).is_file():
                    names[a.asname or a.name] = target
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("candidates.") and a.asname:
                    names[a.asname] = a.name
    return names


@pytest.mark.parametrize("file", py_files("candidates"), ids=rel)
def test_candidates_share_code_only_through_public_names(file):
    """No private name of another candidate module, by import or by attribute; another op
    family's modules not at all: what families share lives in SHARED_HOMES."""
    own = ".".join(file.relative_to(ROOT).with_suffix("").parts)
    family = own.split(".")[1] if own.count(".") == 2 else None
    for line, module in imports(file):
        if root(module) != "candidates" or module == "candidates":
            continue
        where = f"{rel(file)}:{line} imports {module}"
        home = next((h for h in SHARED_HOMES if module == h or module.startswith(h + ".")), None)
        name = module[len(home) + 1:] if home and module != home else module.rsplit(".", 1)[1]
        assert not name.startswith("_"), f"{where}: a private name of another candidate module"
        if home is None:
            assert module.split(".")[1] == family, \
                f"{where}: another op family's module; shared code belongs in {sorted(SHARED_HOMES)}"
    tree = ast.parse(file.read_text(), str(file))
    aliases = _candidate_module_names(file)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in aliases and node.attr.startswith("_"):
            raise AssertionError(f"{rel(file)}:{node.lineno} uses {aliases[node.value.id]}."
                                 f"{node.attr}, a private name of another candidate module")


def _code_lines(file: Path):
    """(line number, code) of ``file`` without comments and docstrings."""
    tree = ast.parse(file.read_text(), str(file))
    docstrings = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            docstrings.update(range(body[0].lineno, body[0].end_lineno + 1))
    for number, line in enumerate(file.read_text().splitlines(), 1):
        code = line.split("#", 1)[0]
        if number not in docstrings and code.strip():
            yield number, code


# What only a shared home does: (pattern, the home, what it is)
HOME_ONLY = [
    (re.compile(r"set_num_threads|setNumThreads|set_num_interop_threads|threadpoolctl|"
                r"ThreadpoolController|threadpool_limits"),
     "convbench.thread_settings (counts) and candidates.runtime (run_blas_jobs)",
     "thread settings of a library"),
    (re.compile(r"\bnp\.pad\(|\bnumpy\.pad\("), "candidates.runtime.extend", "border extension"),
    (re.compile(r"float32 if [\w.]+ (==|in) .*float16"),
     "refimpl.dtypes.compute_dtype", "the half floats' compute dtype"),
    (re.compile(r"\bn \+ lo \+ hi - k \+ 1\b"), "refimpl.geometry.image_output_shape",
     "the image form's output shape"),
]


@pytest.mark.parametrize("file", py_files("candidates"), ids=rel)
def test_shared_rules_are_written_once(file):
    if ".".join(file.relative_to(ROOT).with_suffix("").parts) in SHARED_HOMES:
        return
    for number, code in _code_lines(file):
        for pattern, home, what in HOME_ONLY:
            assert not pattern.search(code), \
                f"{rel(file)}:{number} does {what} itself: {code.strip()!r}; use {home}"


def test_home_only_rules_catch_what_they_name():
    lines = {"torch.set_num_threads(threads())": 0, "cv2.setNumThreads(4)": 0,
             "from threadpoolctl import ThreadpoolController": 0,
             "xp = np.pad(x, pads, mode=border)": 1,
             "compute = np.float32 if out == np.float16 else out": 2,
             "compute = torch.float32 if out in (torch.float16, torch.bfloat16) else out": 2,
             "n_out = tuple(n + lo + hi - k + 1 for n in x)": 3}
    for code, rule in lines.items():
        assert [i for i, (p, _, _) in enumerate(HOME_ONLY) if p.search(code)] == [rule], code


@pytest.mark.parametrize("file", py_files("convbench"), ids=rel)
def test_convbench_never_imports_suites(file):
    for line, module in imports(file):
        assert root(module) != "suites", f"{rel(file)}:{line} imports {module}"


def test_import_helper_sees_lazy_and_relative_imports(tmp_path):
    pkg = ROOT / "candidates" / "correlate" / "fftconvolve_scipy.py"
    lazy = [m for _, m in imports(pkg)]
    top = [m for _, m in imports(pkg, module_level_only=True)]
    assert "scipy.signal" in lazy and "scipy.signal" not in top and "numpy" in top


def _fresh_modules(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json\n"
                          "print(json.dumps(sorted(sys.modules)))"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


HEAVY = ("torch", "cv2", "cupy", "scipy.ndimage", "scipy.signal", "numba", "triton", "skimage",
         "pandas")


def test_import_convbench_is_light():
    loaded = _fresh_modules("import convbench")
    assert "convbench.api" in loaded
    heavy = [m for m in HEAVY if m in loaded]
    assert not heavy, f"import convbench loads {heavy}: import them lazily"


def test_importing_candidates_loads_no_library():
    paths = [p for p in registered_modules() if (ROOT / (p.replace(".", "/") + ".py")).is_file()]
    loaded = _fresh_modules("\n".join(f"import {p}" for p in paths))
    heavy = [m for m in HEAVY + ("scipy",) if m in loaded]
    assert not heavy, f"importing the candidate modules loads {heavy}"


# ------------------------------------------------------------------- banned flag names

BANNED = {"flip", "flipped", "mode", "flip_kernel", "flipkernel"}


def public_functions():
    import convbench

    for name in convbench.__all__:
        obj = getattr(convbench, name)
        if inspect.isfunction(obj):
            yield f"convbench.{name}", obj
    for file in py_files("refimpl"):
        module = importlib.import_module(".".join(file.relative_to(ROOT).with_suffix("").parts))
        for name, obj in vars(module).items():
            if inspect.isfunction(obj) and not name.startswith("_") and obj.__module__ == module.__name__:
                yield f"{module.__name__}.{name}", obj


def test_no_action_flags():
    checked = 0
    for name, fn in public_functions():
        params = set(inspect.signature(fn).parameters)
        assert not params & BANNED, f"{name} has parameter(s) {sorted(params & BANNED)}"
        checked += 1
    assert checked > 20

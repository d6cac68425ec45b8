"""One record per op (convbench.ops): the public functions agree with the records, every
former table is derived from them, and a new op is seen everywhere from its record alone."""
from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import sys

import numpy as np
import pytest

import convbench
from convbench import asv_support, choose, registry, verification
from convbench.cases import all_suites, make_case, suite
from convbench.ops import (REQUIRED, Asv, Bordered, Normwise, Operation, ThroughCorrelate, all_ops,
                           family, get_op)
from convbench.spec import Spec

PUBLIC = ("correlate", "convolve", "gaussian", "conv", "conv_transpose", "conv_grad_input",
          "conv_grad_weight", "conv_grad_bias", "max_pool", "avg_pool", "lp_pool", "batch_norm")
# ops the harness verifies and benchmarks that have no convbench.<op> function
NO_PUBLIC_FUNCTION = ("max_pool_grad", "avg_pool_grad", "lp_pool_grad", "conv_relu",
                      "batch_norm_grad")
# keywords of the library, not of the op: the choice of candidate and the accuracy contract
LIBRARY_KEYWORDS = {"algorithm": None, "accuracy": "elementwise"}
# arrays a call may leave out (conv's and conv_transpose's bias, batch_norm's weight and
# bias), passed as None
OPTIONAL_ARRAYS = ("bias", "weight")


# ------------------------------------------------------------------ public signatures

def signature_problems(signature: inspect.Signature, record: Operation) -> list[str]:
    """How ``signature`` differs from the record: its arrays positionally, then the record's
    keywords in order with its defaults (REQUIRED: none), then the library's keywords."""
    params = list(signature.parameters.values())
    n = len(record.arrays)
    arrays, rest = params[:n], params[n:]
    problems = []
    if tuple(p.name for p in arrays) != record.arrays:
        problems.append(f"arrays {[p.name for p in arrays]}, record {list(record.arrays)}")
    for p in arrays:
        optional = p.name in OPTIONAL_ARRAYS and p.default is None
        if p.kind is not p.POSITIONAL_OR_KEYWORD or (p.default is not p.empty and not optional):
            problems.append(f"array {p.name} is not positional without a default")
    keywords = [p for p in rest if p.name not in LIBRARY_KEYWORDS]
    library = [p for p in rest if p.name in LIBRARY_KEYWORDS]
    if rest != keywords + library:
        problems.append("the library's keywords are not last")
    if [p.name for p in keywords] != [k for k, _ in record.defaults]:
        problems.append(f"keywords {[p.name for p in keywords]}, record "
                        f"{[k for k, _ in record.defaults]}")
    for p, (key, default) in zip(keywords, record.defaults):
        if default is REQUIRED:
            if p.default is not p.empty:
                problems.append(f"{key} defaults to {p.default!r}; the record has no default")
        elif p.default is p.empty or type(p.default) is not type(default) or p.default != default:
            problems.append(f"{key}={'<none>' if p.default is p.empty else repr(p.default)}, "
                            f"record {default!r}")
    if "algorithm" not in [p.name for p in library]:
        problems.append("no algorithm= keyword")
    for p in library:
        if p.kind is not p.KEYWORD_ONLY or p.default != LIBRARY_KEYWORDS[p.name]:
            problems.append(f"{p.name} is not keyword-only with default "
                            f"{LIBRARY_KEYWORDS[p.name]!r}")
    return problems


def test_every_op_has_a_public_function_or_is_listed_without_one():
    assert set(PUBLIC) | set(NO_PUBLIC_FUNCTION) == set(all_ops())
    assert not set(PUBLIC) & set(NO_PUBLIC_FUNCTION)
    assert set(PUBLIC) <= set(convbench.__all__)
    assert not any(hasattr(convbench, op) for op in NO_PUBLIC_FUNCTION)


@pytest.mark.parametrize("op", PUBLIC)
def test_public_signature_is_the_records(op):
    assert signature_problems(inspect.signature(getattr(convbench, op)), get_op(op)) == []


def _other(value):
    """A default that differs from ``value`` in value or type."""
    return 1.5 if value is None or isinstance(value, str) else None


@pytest.mark.parametrize("op", PUBLIC)
def test_signature_check_catches_every_mismatch(op):
    """The check above fails for any changed default, a required keyword given a default,
    a dropped or reordered keyword and reordered arrays."""
    record = get_op(op)
    signature = inspect.signature(getattr(convbench, op))
    params = list(signature.parameters.values())
    n = len(record.arrays)
    for i in range(n, n + len(record.defaults)):
        p = params[i]
        changed = p.replace(default=None if p.default is p.empty else _other(p.default))
        try:
            mutated = signature.replace(parameters=params[:i] + [changed] + params[i + 1:])
        except ValueError:      # a default before a required parameter: no such function
            continue
        assert signature_problems(mutated, record), (op, p.name)
    if record.defaults:
        dropped = signature.replace(parameters=params[:n] + params[n + 1:])
        assert signature_problems(dropped, record), op
    if len(record.defaults) > 1 and all(p.default is not p.empty for p in params[n:n + 2]):
        swapped = params[:n] + [params[n + 1], params[n]] + params[n + 2:]
        assert signature_problems(signature.replace(parameters=swapped), record), op
    if n > 1 and params[1].default is params[1].empty:
        swapped = [params[1], params[0]] + params[2:]
        assert signature_problems(signature.replace(parameters=swapped), record), op


def test_a_changed_default_fails():
    """A hand-written wrong function: correlate with border='edge' and no accuracy."""
    def correlate(x, w, *, border="edge", cval=0.0, padding="same", origin=0, out_dtype=None,
                  algorithm=None):
        """stand-in"""

    problems = signature_problems(inspect.signature(correlate), get_op("correlate"))
    assert problems == ["border='edge', record 'constant'"]


def test_required_parameters_are_refused_by_name_when_missing():
    with pytest.raises(TypeError, match="sigma"):
        Spec.make("gaussian", [(8, 8)], ["float32"])
    with pytest.raises(TypeError, match="kernel_size"):
        Spec.make("max_pool", [(1, 1, 8, 8)], ["float32"])
    with pytest.raises(TypeError, match="input_shape"):
        Spec.make("conv_grad_input", [(1, 1, 6, 6), (1, 1, 3, 3)], ["float32"] * 2)


# ------------------------------------------------------------------ derived tables

def test_registry_tables_are_the_records():
    ops = all_ops()
    assert dict(registry.CANDIDATES) == {op: dict(r.candidates) for op, r in ops.items()
                                         if r.candidates}
    assert dict(registry.REUSED) == {op: r.reuses for op, r in ops.items() if r.reuses}
    assert set(registry.PEERS) == set().union(*(r.peers for r in ops.values()))
    assert registry.ops() and set(registry.ops()) == {op for op, r in ops.items()
                                                      if r.candidates or r.reuses}


def test_the_reuses_and_conv_relu_are_as_the_project_defines_them():
    assert registry.REUSED == {"convolve": "correlate", "gaussian": "correlate"}
    assert "conv_relu" in all_ops() and "conv_relu" in registry.ops()
    assert set(get_op("conv_relu").candidates) == {"conv_torch", "cudnn_torch",
                                                   "cudnn_autotune_torch", "cudnn_tf32_torch",
                                                   "implicit_gemm_triton"}


@pytest.mark.parametrize("op", list(all_ops()))
def test_candidates_of_a_record(op):
    record = get_op(op)
    for name, path in record.candidates.items():
        assert importlib.util.find_spec(path) is not None, f"{op}/{name}: no module {path}"
    runs = set(record.candidates) | set(get_op(record.reuses).candidates if record.reuses else ())
    assert record.peers <= set(record.candidates), op
    for library, names in record.preference.items():
        assert names and set(names) <= runs, (op, library)
    ours = [c for c in registry.candidates(op) if getattr(c, "package", None) is None]
    source = get_op(record.reuses).candidates if record.reuses else {}
    assert [c.name for c in ours] == list(record.candidates) + [n for n in source
                                                               if n not in record.candidates]
    for c in ours:
        assert c.module_path == get_op(c.reused_from or op).candidates[c.name]
    # a candidate is a peer by its name (Candidate.peer): every record listing it agrees
    assert {n for n in record.candidates if n in registry.PEERS} == set(record.peers), op


def test_choose_rules_are_the_records():
    expected = {(op, library): tuple(names) for op, r in all_ops().items()
                for library, names in r.preference.items()}
    assert dict(choose.RULES) == expected and len(choose.RULES) == len(expected)
    for (op, library), names in expected.items():
        assert choose.RULES[(op, library)] == choose.preference(op, library) == names
    assert choose.RULES.get(("conv_relu", "numpy")) is None   # no preference: no default
    with pytest.raises(ValueError, match="conv_relu"):
        choose.preference("conv_relu", "numpy")


def test_suites_are_the_records():
    merged = all_suites()
    for op, record in all_ops().items():
        for name, builder in record.suites.items():
            assert merged[name][op] is builder
    assert sum(map(len, merged.values())) == sum(len(r.suites) for r in all_ops().values())
    assert {"small", "quick", "seed", "images", "real", "layers", "gpu",
            "bfloat16"} == set(merged)


def test_asv_selections_are_the_records():
    ops = all_ops()
    assert dict(asv_support.TIME_SELECTION) == {op: list(r.asv.time) for op, r in ops.items()
                                                if r.asv.time}
    assert dict(asv_support.PEAKMEM_SELECTION) == {op: r.asv.peakmem for op, r in ops.items()
                                                   if r.asv.peakmem}
    for op, record in ops.items():
        assert {s for s, _ in record.asv.time} <= set(record.suites), op
        assert record.asv.peakmem == 0 or record.asv.time, op
    grid = asv_support.build_grid()
    assert {op: entry["family"] for op, entry in grid["ops"].items()} == \
        {op: family(op) for op in grid["ops"]}
    assert family("conv_relu") == "conv" and family("max_pool_grad") == "pool"


def test_image_filter_hooks_are_not_stubbed_elsewhere():
    for hook in ("border_zones", "fft_sizes", "as_correlate", "correlate_call"):
        assert not hasattr(Operation, hook), hook
    normwise = {op for op, r in all_ops().items() if isinstance(r, Normwise)}
    assert normwise == {"correlate", "convolve", "gaussian", "conv", "conv_relu"}
    for op, record in all_ops().items():
        assert (record.reuses is not None) <= isinstance(record, ThroughCorrelate), op
        for method in ("output_shape", "oracle", "oracle_at", "terms"):
            assert getattr(type(record), method) is not getattr(Operation, method), (op, method)
    assert not isinstance(get_op("conv_grad_bias"), Bordered)   # no border: sampled uniformly


def test_normwise_models_need_a_normwise_op():
    with pytest.raises(ValueError, match="'fft' is not a model of max_pool"):
        registry.user_candidate("max_pool", lambda x, **kw: x, error="fft")
    with pytest.raises(ValueError, match="'winograd' is not a model of correlate"):
        registry.user_candidate("correlate", lambda x, w, **kw: x, error="winograd")
    assert registry.user_candidate("correlate", lambda x, w, **kw: x, error="fft").error == "fft"


# ------------------------------------------------------------------ adding an op

@dataclasses.dataclass(frozen=True)
class Scale(Operation):
    """``scale(x, *, factor=2.0)`` = factor * x: the smallest op there is."""

    def output_shape(self, spec):
        return tuple(spec.shapes[0])

    def oracle(self, spec, arrays):
        return spec.kwargs["factor"] * np.asarray(arrays[0], dtype=np.float64)

    def oracle_at(self, spec, arrays, index):
        return spec.kwargs["factor"] * float(arrays[0][tuple(index)])

    def terms(self, spec):
        return 1


def _scale_cases(op):
    return [make_case(op, [(9, 7)], "float64", name="tiny"),
            make_case(op, [(4, 5, 6)], "float32", factor=-3.0, name="tiny")]


CANDIDATE = '''
LIBRARY, DEVICE, ERROR = "numpy", "cpu", "direct"

def supports(spec):
    return None

def scale(x, factor=2.0):
    return x * x.dtype.type(factor)
'''


@pytest.fixture
def scale_op(tmp_path, monkeypatch):
    """A throw-away op and its one candidate, added by its record alone."""
    package = f"scale_{id(tmp_path)}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "multiply_numpy.py").write_text(CANDIDATE)
    monkeypatch.syspath_prepend(str(tmp_path))
    record = Scale("scale", ("x",), (("factor", 2.0),),
                   candidates={"multiply_numpy": f"{package}.multiply_numpy"},
                   preference={"numpy": ("multiply_numpy",)},
                   suites={"small": _scale_cases},
                   asv=Asv(time=(("small", 1),)))
    monkeypatch.setitem(all_ops(), "scale", record)
    yield record
    sys.modules.pop(f"{package}.multiply_numpy", None)


def test_a_new_record_is_seen_everywhere(scale_op):
    assert "scale" in registry.ops() and registry.CANDIDATES["scale"] == scale_op.candidates
    assert [c.name for c in registry.candidates("scale")] == ["multiply_numpy"]
    assert choose.RULES[("scale", "numpy")] == choose.preference("scale", "numpy") == \
        ("multiply_numpy",)
    assert all_suites()["small"]["scale"] is _scale_cases
    assert [c.id for c in suite("small", "scale")] == ["tiny-scale-x9x7-f64",
                                                       "tiny-scale-x4x5x6-factor=-3.0-f32"]
    assert asv_support.TIME_SELECTION["scale"] == [("small", 1)]
    spec = Spec.make("scale", [(3, 3)], ["float32"], factor=0.5)
    assert choose.choose(spec).name == "multiply_numpy"


def test_a_new_record_is_verified_against_its_oracle(scale_op):
    report = verification.verify_candidates(registry.candidates("scale"), suite("small", "scale"))
    assert report.passed and len(report.rows) == 2
    wrong = verification.verify("scale", lambda x, factor: x * factor + 1e-3)
    assert not wrong.passed

"""pytest plugin: benchmark and verify your own kernel on convbench's case catalogue.

Installed with convbench (entry point ``pytest11``: ``convbench``). With pytest-benchmark::

    from scipy import ndimage

    def my_correlate(x, w, *, border, cval, padding, origin, out_dtype=None): ...

    def test_my_correlate(benchmark, conv_case):
        conv_case.run(benchmark, my_correlate)

``conv_case`` is parametrized over the cases of one op and suite (default: correlate, the
``quick`` suite); the test id is the case id. ``run`` first calls the kernel once, outside
the timing, and checks the result against the float64 oracle under the error bound
(``convbench.verification``); a wrong result fails the test and is never timed. Then it
times the kernel with ``benchmark``; results on GPU arrays (torch CUDA tensors, cupy
arrays) are synchronised inside the timed function, so the device work is counted.
The verdict goes into ``benchmark.extra_info``: ``convbench_status``, ``convbench_case``,
``convbench_op``, ``convbench_worst`` (largest error / bound), ``convbench_max_error``,
``convbench_checked``, ``convbench_error_model``. Everything else is pytest-benchmark's:
``--benchmark-autosave``, ``--benchmark-compare``, ``--benchmark-compare-fail=median:5%``.

Choosing cases: ``--convbench-op correlate``, ``--convbench-suite quick`` (any suite of
``convbench.cases``: small, quick, seed, images, real, layers), ``--convbench-filter TEXT``
(case ids containing TEXT), or per test ``@pytest.mark.convbench(op=..., suite=...,
filter=...)``. ``run(..., error="fft")`` selects the FFT error model; ``to_native=`` converts
each numpy input outside the timing (e.g. to a CUDA tensor); ``supports=`` returns a reason
string for cases your kernel does not handle (the test is skipped with it).
"""
from __future__ import annotations

import math
from typing import Callable

import pytest

DEFAULT_OP = "correlate"
DEFAULT_SUITE = "quick"


def pytest_addoption(parser):
    group = parser.getgroup("convbench", "convbench cases for the conv_case fixture")
    group.addoption("--convbench-op", default=None,
                    help=f"operation whose cases conv_case runs (default {DEFAULT_OP})")
    group.addoption("--convbench-suite", default=None,
                    help=f"case suite for conv_case: small, quick, seed, ... (default {DEFAULT_SUITE})")
    group.addoption("--convbench-filter", action="append", default=None,
                    help="only cases whose id contains this text (repeatable)")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "convbench(op=None, suite=None, filter=None): which convbench cases the "
                   "conv_case fixture of this test runs")


def _selection(metafunc) -> tuple[str, str, list[str]]:
    marker = metafunc.definition.get_closest_marker("convbench")
    kwargs = dict(marker.kwargs) if marker else {}
    config = metafunc.config
    op = kwargs.get("op") or config.getoption("convbench_op") or DEFAULT_OP
    suite = kwargs.get("suite") or config.getoption("convbench_suite") or DEFAULT_SUITE
    filters = kwargs.get("filter") or config.getoption("convbench_filter") or []
    if isinstance(filters, str):
        filters = [filters]
    return op, suite, list(filters)


def pytest_generate_tests(metafunc):
    if "conv_case" not in metafunc.fixturenames:
        return
    from convbench.cases import all_suites, suite as suite_cases

    op, suite, filters = _selection(metafunc)
    suites = all_suites()
    if suite not in suites:
        raise pytest.UsageError(f"--convbench-suite: unknown suite {suite!r}; accepted: {', '.join(suites)}")
    if op not in suites[suite]:
        raise pytest.UsageError(f"suite {suite!r} has no cases for op {op!r}; it covers: "
                                f"{', '.join(suites[suite])}")
    cases = [c for c in suite_cases(suite, op) if not filters or any(f in c.id for f in filters)]
    if not cases:
        raise pytest.UsageError(f"no {op} case of suite {suite!r} matches filter {filters}")
    metafunc.parametrize("conv_case", cases, ids=[c.id for c in cases], indirect=True)


class ConvCase:
    """One catalogue case for a test: its inputs, its verification and its timed run."""

    def __init__(self, case):
        self.case = case
        self.spec = case.spec
        self.op = case.spec.op
        self.id = case.id

    def arrays(self):
        """The case's numpy inputs (the same on every call and machine)."""
        return self.case.arrays()

    def verify(self, fn: Callable, *, error: str = "direct", to_native=None, name=None):
        """Call ``fn`` once and check its result; returns (Row, native inputs)."""
        from convbench import verification as v
        from convbench.registry import user_candidate

        candidate = user_candidate(self.op, fn, error=error, name=name)
        skip = v.skip_reason(candidate, self.case)
        if skip:
            pytest.skip(f"{skip[0]}: {skip[1]}")
        from convbench.runner import check

        native = tuple(to_native(a) if to_native else a for a in self.case.arrays())
        row, _, _ = check(candidate, self.case, native)
        return row, native

    def run(self, benchmark, fn: Callable, *, error: str = "direct", to_native=None,
            supports: Callable | None = None, name: str | None = None):
        """Verify ``fn`` on this case, record the verdict in ``benchmark.extra_info``, fail
        the test on a wrong result, else time ``fn`` with ``benchmark``. Returns the result
        of the last timed call."""
        from convbench.arrays import synchronize

        if supports is not None:
            reason = supports(self.spec)
            if reason:
                pytest.skip(f"unsupported: {reason}")
        row, native = self.verify(fn, error=error, to_native=to_native, name=name)
        benchmark.extra_info.update({
            "convbench_case": self.id,
            "convbench_op": self.op,
            "convbench_status": row.status,
            "convbench_worst": None if math.isnan(row.worst) else float(row.worst),
            "convbench_max_error": None if math.isnan(row.max_error) else float(row.max_error),
            "convbench_checked": row.checked,
            "convbench_error_model": row.error_model,
        })
        if row.status != "pass":
            pytest.fail(f"wrong result on {self.id}: {row.detail} (not timed)", pytrace=False)
        operation, spec = self.spec.operation, self.spec

        def timed():
            out = operation.call(fn, native, spec)
            synchronize(out)  # GPU arrays: wait for the device inside the timed region
            return out

        return benchmark(timed)

    def __repr__(self) -> str:
        return f"<ConvCase {self.id}>"


@pytest.fixture
def conv_case(request) -> ConvCase:
    """A convbench case (parametrized by --convbench-op/--convbench-suite or the
    ``convbench`` marker); call ``conv_case.run(benchmark, my_kernel)``."""
    if not hasattr(request, "param"):
        raise pytest.UsageError("conv_case is parametrized by the convbench plugin; "
                                "request it as a test argument")
    return ConvCase(request.param)

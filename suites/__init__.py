"""asv benchmark suites: one module per op family (correlate.py, conv.py, pool.py).

Each family module asks ``benchmark_classes`` for its ops' classes. Per op with cases in
the grid (``Correlate`` for correlate, ``ConvGradInput`` for conv_grad_input, ...):

    <Op>.time_<op>(candidate, case)              one call per timed sample (GPU: synchronised)
    <Op>Peakmem.peakmem_<op>(candidate, case)    peak RSS of a process that ran setup + a call
    <Op>Device.track_device_seconds(candidate, case)
                                                 median time of one call from CUDA events
                                                 (GPU candidates only; n/a on a CPU machine)

and ``correlate.Environment.track_gpus``, whose parameter is the GPU, driver, CUDA and
cuDNN description (asv's machine.json has no GPU field).

The grid, candidate names x case ids per op, is frozen in ``grid.json`` and written by
``python -m convbench.asv_support`` from ``convbench.registry`` and the case catalogue. It is
frozen on purpose: asv recomputes a benchmark's params in every child process against the
project as installed at the commit being measured, so params computed from an older
registry would shift the parameter indices and mislabel results. Candidates that other
installed packages add (``convbench.outside``) are not in the grid: each family module
adds them at import from the installed packages' entry points, the same set for every
commit measured in one environment.

Every combination resolves its candidate and case by name in the installed convbench;
setup raises NotImplementedError (asv records it as skipped, n/a) with the reason when the
commit lacks the harness API, the candidate or the case; when the candidate is unavailable
here or does not support the case; and when its result is wrong: the candidate's output is
checked with ``convbench.verification.check_output`` before anything is timed.

This package imports convbench only inside setup, so ``asv check`` and discovery work on
every commit. Run CUDA benchmarks with ``asv run --launch-method spawn`` (forked children
cannot initialise CUDA).
"""
from __future__ import annotations

import contextlib
import functools
import json
import subprocess
import sys
from pathlib import Path

GRID_PATH = Path(__file__).resolve().with_name("grid.json")
DEVICE_REPEATS = 20


def _load_grid() -> dict:
    with open(GRID_PATH) as f:
        return json.load(f)


GRID = _load_grid()


def _outside_candidates() -> dict[str, list[str]]:
    """op -> names of the candidates other installed packages declare (entry-point group
    convbench.candidates; ``convbench.outside``). They are left out of the frozen grid and
    added here from the installed packages' metadata, not from the commit's convbench: the
    same in every process of an asv run and for every commit measured. Each is timed on
    the op it declares; a name the commit's registry refuses is skipped by setup with the
    registry's reason."""
    from importlib import metadata

    out: dict[str, set[str]] = {}
    for entry in metadata.entry_points(group="convbench.candidates"):
        op, _, name = entry.name.partition(".")
        if op in GRID["ops"] and name and name not in GRID["ops"][op]["candidates"]:
            out.setdefault(op, set()).add(name)
    return {op: sorted(names) for op, names in out.items()}


def _importable_convbench() -> None:
    """With ``--python=same`` and no installed convbench, benchmark the checkout that holds
    these suites (asv does not put the project root on sys.path)."""
    try:
        import convbench  # noqa: F401
    except ImportError:
        root = str(Path(__file__).resolve().parent.parent)
        if root not in sys.path:
            sys.path.append(root)


def _skip(reason: str):
    raise NotImplementedError(reason)


@functools.lru_cache(maxsize=None)
def _find_case(op: str, case_id: str):
    """The Case with this id in the installed catalogue (the grid says which suite)."""
    from convbench.cases import suite

    suite_name = GRID["ops"][op]["suites"].get(case_id)
    if suite_name is None:
        return None
    for case in suite(suite_name, op):
        if case.id == case_id:
            return case
    return None


class Prepared:
    """A verified, bound call of one candidate on one case (setup of every benchmark)."""

    def __init__(self, op: str, candidate_name: str, case_id: str):
        _importable_convbench()
        try:
            from convbench import registry, verification
            from convbench.cases import suite  # noqa: F401  (the cases package)
        except Exception as exc:  # an old commit: no harness API yet
            _skip(f"this commit lacks the harness API ({type(exc).__name__}: {exc})")
        try:
            candidate = registry.get(op, candidate_name)
        except ValueError as exc:
            _skip(f"not in this commit's registry: {exc}")
        try:
            case = _find_case(op, case_id)
        except Exception as exc:
            _skip(f"case catalogue of this commit cannot build it ({type(exc).__name__}: {exc})")
        if case is None:
            _skip(f"case {case_id} is not in this commit's catalogue")
        try:
            skip = verification.skip_reason(candidate, case)
        except Exception as exc:  # older registries raised where they now report
            skip = ("unavailable", f"{type(exc).__name__}: {exc}")
        if skip:
            status, reason = skip
            _skip(reason if reason.startswith(status) else f"{status}: {reason}")
        self.candidate, self.case = candidate, case
        self._stack = contextlib.ExitStack()
        try:
            try:
                from convbench.thread_settings import threads
            except ImportError:  # a commit before convbench.thread_settings
                from convbench.machine import threads
            self.threads = self._stack.enter_context(threads(None))
        except ImportError:
            self.threads = None
        try:
            from convbench.runner import check
        except ImportError:  # a commit before convbench.runner: its verification steps
            def check(candidate, case, native):
                out = verification.call(candidate, case, native)
                return verification.check_output(candidate, case, out), out, None
        try:
            native = verification.native_inputs(candidate, case)
            row, out, _ = check(candidate, case, native)
        except Exception as exc:
            self.close()
            _skip(f"error: {type(exc).__name__}: {exc}")
        if row.status == "error":
            self.close()
            _skip(f"error: {row.detail}")
        if row.status != "pass":
            self.close()
            _skip(f"wrong result: {row.detail}")
        del out
        spec, fn = case.spec, candidate.function()
        operation = spec.operation
        self.native = native
        self.on_gpu = candidate.device == "gpu"
        self.library = getattr(candidate.module, "LIBRARY", "numpy")
        if self.on_gpu:
            from convbench.arrays import synchronize

            def call():
                synchronize(operation.call(fn, native, spec))
        else:
            def call():
                return operation.call(fn, native, spec)
        self.call = call

    def close(self) -> None:
        self._stack.close()

    def _bound(self):
        if not self.on_gpu:
            _skip("device events time GPU candidates only")
        try:
            from convbench import gpu
            from convbench.timing import Protocol
        except ImportError as exc:
            _skip(f"this commit lacks convbench.gpu ({exc})")
        return gpu, gpu.bind(self.candidate, self.case, self.native), Protocol

    def device_seconds(self, repeats: int = DEVICE_REPEATS) -> float:
        """Median seconds of one call between two device events (convbench.gpu's timer,
        warm L2, one call per sample)."""
        gpu, bound, Protocol = self._bound()
        protocol = Protocol(warmup_s=0.0, sample_s=0.0, samples=repeats)
        return gpu.measure({"call": bound}, protocol, flush_l2=False)["call"].median

    def device_peak_bytes(self) -> float:
        if not self.on_gpu:
            _skip("device memory is tracked for GPU candidates only")
        gpu, bound, _ = self._bound()
        return gpu.peak_bytes(bound)[0]


class _Family:
    """Base of every generated benchmark class (skipped by asv discovery: leading _)."""

    op: str = ""
    param_names = ["candidate", "case"]
    timeout = 180
    # asv: 2 rounds (processes) of 3 to 10 samples, at most 2 s of samples per round; the
    # defaults (up to 20 s a round) make a history run of ~40 combinations x commits too long.
    rounds = 2
    repeat = (3, 10, 2.0)
    warmup_time = 0.05

    def setup(self, candidate, case):
        self.prepared = Prepared(self.op, candidate, case)

    def teardown(self, candidate, case):
        prepared = getattr(self, "prepared", None)
        if prepared is not None:
            prepared.close()


def _class_name(op: str) -> str:
    return "".join(part.capitalize() for part in op.split("_"))


def benchmark_classes(family: str, module_name: str) -> dict[str, type]:
    """The asv classes of the ops of ``family`` (correlate, conv, pool) that have cases in
    the grid, to put in the family module's globals."""
    out, outside = {}, _outside_candidates()
    for op, entry in GRID["ops"].items():
        if entry["family"] != family or not entry["candidates"]:
            continue
        entry = {**entry, "candidates": entry["candidates"] + outside.get(op, [])}
        name = _class_name(op)

        def time_call(self, candidate, case):
            self.prepared.call()

        def peakmem_call(self, candidate, case):
            self.prepared.call()

        def track_device_seconds(self, candidate, case):
            return self.prepared.device_seconds()

        def track_device_peak_bytes(self, candidate, case):
            return self.prepared.device_peak_bytes()

        track_device_seconds.unit = "seconds"
        track_device_peak_bytes.unit = "bytes"
        time_call.__name__ = f"time_{op}"
        peakmem_call.__name__ = f"peakmem_{op}"
        common = {"op": op, "__module__": module_name}
        if entry["time"]:
            out[name] = type(name, (_Family,), {
                **common, "params": [entry["candidates"], entry["time"]],
                f"time_{op}": time_call,
                "__doc__": f"Wall time of one {op} call (GPU work synchronised inside)."})
        if entry["peakmem"]:
            out[name + "Peakmem"] = type(name + "Peakmem", (_Family,), {
                **common, "params": [entry["candidates"], entry["peakmem"]],
                f"peakmem_{op}": peakmem_call,
                "__doc__": f"Peak resident memory of a process that set up and ran one {op} call."})
        gpu = [c for c in entry["candidates"] if c in GRID.get("gpu_candidates", [])]
        if gpu and entry["time"]:
            out[name + "Device"] = type(name + "Device", (_Family,), {
                **common, "params": [gpu, entry["time"]],
                "track_device_seconds": track_device_seconds,
                "track_device_peak_bytes": track_device_peak_bytes,
                "__doc__": f"{op} on the GPU: CUDA-event time and device memory peak."})
    return out


@functools.lru_cache(maxsize=None)
def gpu_description() -> str:
    """GPU name, driver, CUDA and cuDNN builds, read without initialising CUDA."""
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version",
                              "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=20)
        header = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return "no GPU"
    gpus = [line.strip() for line in smi.stdout.splitlines() if line.strip()]
    if smi.returncode != 0 or not gpus:
        return "no GPU"
    cuda = ""
    for token in header.stdout.split("CUDA Version:")[1:2]:
        cuda = token.split()[0]
    parts = [f"{len(gpus)}x {gpus[0].replace(', ', ' driver ')}", f"CUDA {cuda or '?'}"]
    from importlib import metadata

    for dist in ("torch", "nvidia-cudnn-cu12", "nvidia-cudnn-cu13", "cupy-cuda12x"):
        try:
            parts.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(parts)


def gpu_count() -> int:
    description = gpu_description()
    return 0 if description == "no GPU" else int(description.split("x", 1)[0])


__all__ = ["GRID", "Prepared", "benchmark_classes", "gpu_description", "gpu_count"]

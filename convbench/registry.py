"""The candidates of every op, imported lazily, with availability and reasons.

Each op's record (convbench.ops) names its candidates; an op whose record ``reuses``
another's runs those too, through one adapter (below): every correlate algorithm is also
a convolve and a gaussian algorithm without a second module.
"""
from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field
from typing import Callable

from convbench.ops import Derived, Normwise, PerOp, all_ops, get_op


def _peers() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for op, record in all_ops().items():
        for name in record.peers:
            out.setdefault(name, []).append(op)
    return out


# Derived from the records (never edited): op -> candidate name -> module, in listing order;
# the peers (candidates that wrap another library's routine as people call it, which
# convbench's algorithms are compared with: "ratio to the fastest peer"), name -> ops;
# op -> the op whose candidates it also runs (through its correlate_call).
CANDIDATES = PerOp(lambda record: dict(record.candidates))
PEERS = Derived(_peers)
REUSED = PerOp(lambda record: record.reuses)

# A user's function declaring one of these error models is verified on NaN/Inf values and
# exact integer sums too (the others transform their inputs, which spreads NaN and rounds).
USER_SUM_MODELS = ("direct", "exact", "tf32")

# Which pip package provides each LIBRARY, for the "unavailable" reason.
PIP_NAMES = {"cv2": "opencv-python-headless", "torch": "torch==2.13.0", "scipy": "scipy",
             "cupy": "cupy-cuda12x", "numba": "numba", "triton": "triton", "ducc0": "ducc0"}


@dataclass
class Candidate:
    op: str
    name: str
    module_path: str | None = None
    fn: Callable | None = None          # a user's function with the op's signature
    error: str | Callable = "direct"    # the user's error model ('direct' unless told)
    reused_from: str | None = None      # "correlate": run a correlate candidate (op.correlate_call)
    package: str | None = None          # the installed distribution adding it (convbench.outside)
    _module: object = field(default=None, repr=False)

    @property
    def module(self):
        if self._module is None and self.module_path is not None:
            self._module = importlib.import_module(self.module_path)
        return self._module

    @property
    def device(self) -> str:
        if self.module_path is None:
            return "cpu"
        try:
            return getattr(self.module, "DEVICE", "cpu")
        except ImportError:
            return "?"

    def unavailable(self) -> str | None:
        """None when it can run here, else the reason (missing package, no GPU)."""
        if self.module_path is None:
            return None
        try:
            module = self.module
        except ImportError as exc:
            return f"unavailable: {self.module_path} cannot be imported ({exc})"
        return _library_missing(module.LIBRARY, self.device)

    def supports(self, spec) -> str | None:
        if self.reused_from:
            spec = spec.operation.as_correlate(spec)
        if self.module_path is None:
            return None
        return self.module.supports(spec)

    def error_model(self, spec) -> str:
        model = self.module.ERROR if self.module_path else self.error
        if callable(model):
            return model(spec.operation.as_correlate(spec) if self.reused_from else spec)
        return model

    @property
    def nonfinite(self) -> bool:
        """NaN/Inf placed as the oracle places them (NONFINITE). A user's function is held
        to it by verification when it declares a direct sum's model ('fft', 'winograd' and
        'iir' transforms spread them)."""
        if self.module_path is None:
            return self.error in USER_SUM_MODELS
        return getattr(self.module, "NONFINITE", False)

    def exact_int_bits(self, spec) -> int:
        """Integer sums bounded by 2**bits are exact (EXACT_INT_BITS; 0: never exact). A
        user's function is held to exact integers when it declares a direct sum's model."""
        if self.module_path is None:
            return 64 if self.error in USER_SUM_MODELS else 0
        bits = getattr(self.module, "EXACT_INT_BITS", 0)
        if callable(bits):
            return bits(spec.operation.as_correlate(spec) if self.reused_from else spec)
        return bits

    def to_native(self, a):
        convert = getattr(self.module, "to_native", None) if self.module_path else None
        return convert(a) if convert is not None else a

    def function(self) -> Callable:
        """A callable with the op's signature."""
        if self.fn is not None:
            return self.fn
        fn = getattr(self.module, self.reused_from or self.op)
        if not self.reused_from:
            return fn
        return _through(get_op(self.op), fn)

    @property
    def max_work(self) -> float | None:
        """Multiply-adds above which a run of this candidate is skipped (MAX_WORK)."""
        return getattr(self.module, "MAX_WORK", None) if self.module_path else None

    @property
    def peer(self) -> bool:
        return self.fn is None and self.package is None and self.name in PEERS

    @property
    def key(self) -> str:
        return f"{self.op}/{self.name}"


def _through(operation, correlate: Callable) -> Callable:
    """The op's call rewritten as a correlate call (the op says how: reversed kernel for
    convolve, a sampled kernel for gaussian) and handed to a correlate candidate."""

    @functools.wraps(correlate)
    def call(*arrays, **kwargs):
        arrays, kwargs = operation.correlate_call(arrays, kwargs)
        return correlate(*arrays, **kwargs)

    return call


@functools.lru_cache(maxsize=None)
def _library_missing(library: str, device: str) -> str | None:
    try:
        module = importlib.import_module(library)
    except Exception as exc:  # ImportError, or a broken install raising anything
        return f"unavailable: {library} not importable ({type(exc).__name__}); pip install {PIP_NAMES.get(library, library)}"
    if device == "gpu":
        return _gpu_missing(library, module)
    return None


def _gpu_missing(library: str, module) -> str | None:
    try:
        if library == "torch":
            ok = module.cuda.is_available()
        elif library == "cupy":
            ok = module.cuda.runtime.getDeviceCount() > 0
        else:
            import torch

            ok = torch.cuda.is_available()
    except Exception:
        ok = False
    return None if ok else "unavailable: no GPU"


def ops() -> list[str]:
    return list(dict.fromkeys(list(CANDIDATES) + list(REUSED)))


def _listed(op: str) -> list[tuple[str, str, str | None]]:
    """(name, module, package) of op's own candidates: ours, then other installed packages'
    (convbench.outside, which refuses a name of ours)."""
    from convbench import outside

    return ([(name, path, None) for name, path in CANDIDATES.get(op, {}).items()]
            + [(e.name, e.module, e.package) for e in outside.candidates().get(op, {}).values()])


def _entries(op: str) -> list[tuple[str, str, str | None, str | None]]:
    """(name, module, reused_from, package) of op: its own candidates, then the reused op's
    ones (a reused name the op already has is skipped: the op's own module wins)."""
    if op not in CANDIDATES and op not in REUSED:
        raise ValueError(f"unknown op {op!r}; accepted: {', '.join(ops())}")
    out = [(name, path, None, package) for name, path, package in _listed(op)]
    own = {name for name, *_ in out}
    source = REUSED.get(op)
    if source:
        out += [(name, path, source, package) for name, path, package in _listed(source)
                if name not in own]
    return out


def candidates(op: str | None = None, names=None) -> list[Candidate]:
    """Registered candidates of ``op`` (or every op), optionally only ``names``."""
    out = []
    for o in ([op] if op else ops()):
        for name, path, source, package in _entries(o):
            if not names or name in names:
                out.append(Candidate(o, name, path, reused_from=source, package=package))
    if names:
        missing = [n for n in names if n not in {c.name for c in out}]
        if missing:
            all_names = sorted({e[0] for o in ([op] if op else ops()) for e in _entries(o)})
            raise ValueError(f"unknown candidate(s) {missing}; accepted: {', '.join(all_names)}")
    return out


def get(op: str, name: str) -> Candidate:
    return candidates(op, [name])[0]


def user_candidate(op: str, fn: Callable, error: str = "direct", name: str | None = None) -> Candidate:
    if not callable(fn):
        raise TypeError(f"fn must be callable with the {op} signature, got {type(fn).__name__}")
    from convbench.tolerance import MODELS

    if not callable(error) and error not in MODELS:
        raise ValueError(f"error must be one of the error models {MODELS}, got {error!r}")
    if not callable(error) and error not in _models_of(op):
        raise ValueError(f"error={error!r} is not a model of {op}; accepted: {_models_of(op)}")
    return Candidate(op, name or getattr(fn, "__name__", "user_fn"), fn=fn, error=error)


def _models_of(op: str) -> tuple[str, ...]:
    """The error models verification can apply to op: the normwise ones ('fft', 'iir')
    need the op's FFT geometry (ops.Normwise), 'winograd' conv's Winograd scale."""
    from convbench.tolerance import MODELS

    record = get_op(op)
    return tuple(m for m in MODELS if (m not in ("fft", "iir") or isinstance(record, Normwise))
                 and (m != "winograd" or hasattr(record, "winograd_scale")))

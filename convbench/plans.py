"""Plans: validate once, choose once, then run many calls at the cost of the chosen call.

    p = convbench.plan("correlate", x, w, border="wrap")        # example arrays, or
    p = convbench.plan("correlate", shapes=[(512, 512), (5, 5)], dtypes="float32")
    y = p(x, w)                                                  # runs the chosen candidate
    print(p.explain())                                           # what runs, and why

A plan holds the validated spec, the candidates of the default choice's ranking that can
run it (available here, supporting the spec, allowed by ``accuracy``), each with its bound
function and keyword arguments, and the bytes a call needs. What a call's *values* decide
stays per call (convbench.values): NaN/Inf placement, exact integer sums, and the
certificate of an FFT or recursive-Gaussian algorithm; the first candidate of the ranking
those allow runs. Kernel-derived state (FFT spectra, separable factors, transformed
Winograd kernels) lives in the candidates' own kernel caches, which check the kernel's
bytes on every hit (``explain()`` reports them).

The public functions (convbench.correlate, ...) go through ``cached``: a bounded LRU of
plans keyed by everything the choice depends on (op, array library and type, shapes,
dtypes, device, keywords with their types, ``algorithm``, ``accuracy``, and the kernel's
bytes where the ranking reads its values; not strides, which nothing a plan holds depends
on), so a repeated call skips validation and choice. A call whose candidate needs no
conversion and whose values one dot product shows finite goes straight to the candidate
(``Plan._fast_path``); everything else takes ``Plan.run``.
"""
from __future__ import annotations

import collections
import math
import sys
import threading
import time

import numpy as np

from convbench import arrays as xp
from convbench import machine, registry, values
from convbench.choose import KERNEL_VALUE_OPS

_vdot, _isfinite, _monotonic, _ndarray = np.vdot, math.isfinite, time.monotonic, np.ndarray

CACHE_SIZE = 256                  # plans kept by the public functions (LRU)
KERNEL_BYTES_IN_KEY = 65536       # calls with larger kernels are planned afresh each time


SLOW = object()    # what a plan's fast path returns for a call it leaves to Plan.run

# How a plan hands its arrays to a candidate (Choice.mode)
HOST, HOST_NATIVE, PRESENT, ROUND_TRIP = "host", "host, to_native", "as given", "round trip"


class Choice:
    """One candidate a plan may run, with what a call needs of it, resolved once."""

    __slots__ = ("candidate", "function", "kwargs", "nonfinite", "int_limit", "certified",
                 "to_native", "native_library", "mode")

    def __init__(self, candidate, spec, accuracy, library="numpy", cpu_tensors=False):
        self.candidate = candidate
        self.function = candidate.function()
        self.kwargs = {k: v for k, v in spec.params if v is not None}
        self.nonfinite = candidate.nonfinite
        self.int_limit = 2 ** candidate.exact_int_bits(spec) if values.exact_integer(spec) else None
        self.certified = values.needs_certificate(candidate, spec, accuracy)
        self.to_native = getattr(candidate.module, "to_native", None) if candidate.module_path else None
        self.native_library = candidate.module.LIBRARY if candidate.module_path else "numpy"
        if library != "numpy" and self.native_library == library:
            self.mode = PRESENT           # a torch candidate on tensors, cupy on cupy
        elif library == "numpy" or cpu_tensors:
            self.mode = HOST if self.to_native is None else HOST_NATIVE
        else:
            self.mode = ROUND_TRIP

    def allows(self, finite: bool, int_bound) -> bool:
        if not finite and not self.nonfinite:
            return False
        return int_bound is None or self.int_limit is None or int_bound < self.int_limit


class Plan:
    """A validated call of one op on arrays of one description; call it with the arrays."""

    def __init__(self, spec, library: str, device: str, algorithm, accuracy: str,
                 kernel=None):
        from convbench import choose

        self.spec, self.library, self.device = spec, library, device
        self.algorithm, self.accuracy = algorithm, accuracy
        self.arrays = _array_names(spec)
        self.need = sum(spec.memory_parts().values())
        self._float_arrays = tuple(i for i, d in enumerate(spec.dtypes)
                                   if d == "bfloat16" or np.dtype(d).kind in "fc")
        out = spec.kwargs.get("out_dtype")
        self._int_out = out is not None and np.dtype(out).kind in "iu"
        self._exact_int = values.exact_integer(spec)
        self._cpu_tensors = library == "torch" and device == "cpu"
        self._on_host = device == "cpu"
        self._float_image = tuple(i for i in self._float_arrays if i != 1)
        self.kernel_finite = kernel is None or not (kernel.dtype.kind in "fc") or \
            bool(np.isfinite(kernel).all())
        self.skipped: list[str] = []
        self._lock = threading.Lock()
        if algorithm is not None:
            candidate = _named_candidate(spec.op, algorithm)
            reason = candidate.unavailable() or candidate.supports(spec)
            if reason:
                raise ValueError(f"algorithm={algorithm!r} cannot run this call: {reason}")
            self.why = f"algorithm={algorithm!r} was asked for"
            self._pending = []
            self._resolved = [Choice(candidate, spec, "normwise", library, self._cpu_tensors)]
            self.fast = self._fast_path()
            return
        choice_library = "numpy" if library == "torch" and device == "cpu" else library
        names, self.why = choose.ranked(spec, choice_library, kernel)
        if not names:
            raise ValueError(f"no default algorithm for op {spec.op!r} on {library} arrays")
        # resolved in ranking order only as far as needed: checking a candidate imports its
        # library (torch, numba: seconds), which a call that never reaches it must not pay
        self._pending = list(names)
        self._known = {c.name: c for c in registry.candidates(spec.op)}
        self._resolved: list[Choice] = []
        if not self._resolve_next():
            raise ValueError(f"no algorithm can run {spec.id}: " + "; ".join(self.skipped))
        self.fast = self._fast_path()

    def _fast_path(self):
        """A function (present, free memory) -> result, or SLOW when the call needs the general
        path: numpy arrays or CPU tensors, whose values one dot product each shows finite,
        straight into the first candidate. None where that does not apply (exact integer
        sums, a certified algorithm, arrays on a GPU, float16 or complex arrays, a kernel
        holding NaN). The kernel of an op in KERNEL_VALUE_OPS is not checked: the cache
        key holds its bytes. Written out because it is what almost every call runs."""
        first = self._resolved[0]
        checks = self._float_image if self.spec.op in KERNEL_VALUE_OPS else self._float_arrays
        if first.nonfinite and not self._int_out:
            checks = ()     # it places NaN and Inf as the oracle does: nothing to rule out
        if (not self._on_host or first.mode is ROUND_TRIP or self._exact_int
                or first.certified or not self.kernel_finite
                or any(self.spec.dtypes[i] == "bfloat16"
                       or np.dtype(self.spec.dtypes[i]).itemsize < 4
                       or np.dtype(self.spec.dtypes[i]).kind != "f" for i in checks)):
            return None
        fn, kwargs, need, to_native, mode = (first.function, first.kwargs, self.need,
                                             first.to_native, first.mode)

        if self.library == "numpy":
            def fast(present, free):
                if free is not None and need > free:
                    return SLOW
                for i in checks:
                    a = present[i]
                    if 0 in a.strides:
                        a = _stored(a)
                    if not _isfinite(_vdot(a, a)):
                        return SLOW
                out = fn(*(present if to_native is None else map(to_native, present)), **kwargs)
                return out if type(out) is _ndarray else _numpy_of(out)
            return fast

        def fast_tensors(present, free):
            if free is not None and need > free:
                return SLOW
            if mode is PRESENT and not checks:
                return fn(*present, **kwargs)       # a torch candidate, nothing to check
            host = tuple(map(_host_view, present))
            for i in checks:
                a = host[i]
                if 0 in a.strides:
                    a = _stored(a)
                if not _isfinite(_vdot(a, a)):
                    return SLOW
            if mode is PRESENT:
                return fn(*present, **kwargs)
            out = fn(*(host if to_native is None else map(to_native, host)), **kwargs)
            if type(out) is tuple:       # several outputs (batch_norm)
                return tuple(o if type(o) is type(present[0]) else _torch_from_numpy(
                    o if type(o) is _ndarray else xp.to_numpy(o)) for o in out)
            if type(out) is not _ndarray:
                return out if type(out) is type(present[0]) else xp.like(xp.to_numpy(out), present[0])
            return _torch_from_numpy(out)
        return fast_tensors

    def _resolve_next(self) -> bool:
        """Resolve the next statically eligible candidate of the ranking; False when none
        is left."""
        with self._lock:
            return self._resolve_next_locked()

    def _resolve_next_locked(self) -> bool:
        while self._pending:
            name = self._pending.pop(0)
            candidate = self._known.get(name)
            if candidate is None:
                continue
            reason = (candidate.unavailable() or candidate.supports(self.spec)
                      or values.model_ineligible(candidate, self.spec, self.accuracy))
            if reason:
                self.skipped.append(f"{name}: {reason}")
                continue
            self._resolved.append(Choice(candidate, self.spec, self.accuracy, self.library,
                                         self._cpu_tensors))
            return True
        return False

    @property
    def choices(self) -> tuple:
        """Every candidate this plan may run, in order (resolves the whole ranking)."""
        while self._resolve_next():
            pass
        return tuple(self._resolved)

    def _candidates(self):
        """The plan's candidates in order, resolving further ones only when reached."""
        i = 0
        while i < len(self._resolved) or self._resolve_next():
            yield self._resolved[i]
            i += 1

    # -- running ------------------------------------------------------------------------
    def __call__(self, *arrays):
        """Run the plan on arrays matching its description (shapes, dtypes, library).
        Tensors that require grad go through the torch operators (the graph is kept)."""
        present = self._check(arrays)
        if self._cpu_tensors or self.library == "torch":
            route = _route(present)
            if route is not None:
                params = tuple(self.spec.kwargs.get(k, d) for k, d in self.spec.operation.defaults)
                return route(self.spec.op, arrays, self.arrays[:len(arrays)], params,
                             self.algorithm, self.accuracy)
        return self.run(present)

    def run(self, present, kernel_in_key: bool = False):
        """Run on ``present`` (the non-None arrays), already known to match the plan.
        ``kernel_in_key``: the kernel's bytes equal the example's (the plan cache's key
        holds them), so its finiteness is the example's."""
        if self._on_host:
            free = machine.available_memory()     # cached for 0.1 s
            if free is not None and self.need > free:
                self.spec.check_memory(present[0])
        else:
            self.spec.check_memory(present[0])
        # CPU tensors are read through numpy views (no copy): checks and numpy-based
        # candidates then cost what they cost on numpy arrays
        host = tuple(map(_host_view, present)) if self._cpu_tensors else present
        finite = self.kernel_finite if kernel_in_key else True
        if finite:
            for i in (self._float_image if kernel_in_key else self._float_arrays):
                if not _finite(host[i]):
                    finite = False
                    break
        bound = values.integer_bound(self.spec, host[0], host[1]) if self._exact_int else None
        first = self._resolved[0]
        if finite and bound is None and not first.certified:
            return self._run(first, present, host)
        if not finite and self._int_out:
            values.refuse_nonfinite_into_integers(self.spec)
        for choice in self._candidates():
            if not choice.allows(finite, bound):
                continue
            if choice.certified and values.certify(choice.candidate, self.spec, host):
                continue
            return self._run(choice, present, host)
        raise ValueError(self._refusal(present, values.Facts(finite, bound)))

    def _run(self, choice, present, host):
        mode = choice.mode
        if mode is HOST:
            native = host
        elif mode is PRESENT:
            native = present
        elif mode is HOST_NATIVE:
            native = tuple(map(choice.to_native, host))
        else:  # arrays on a GPU into a CPU algorithm: a round trip through the host
            convert = choice.to_native or (lambda a: a)
            native = tuple(convert(xp.to_numpy(a)) for a in present)
        out = choice.function(*native, **choice.kwargs)
        if type(out) is tuple:           # several outputs (batch_norm)
            return tuple(self._returned(o, present) for o in out)
        return self._returned(out, present)

    def _returned(self, out, present):
        """A candidate's result as the caller's kind of array."""
        lib = self.library
        if lib == "numpy":
            return out if type(out) is np.ndarray else xp.to_numpy(out)
        if self._cpu_tensors and type(out) is np.ndarray:
            return _torch_from_numpy(out)
        if xp.library_of(out) == lib:
            return out
        return xp.like(xp.to_numpy(out), present[0])

    def chosen(self, *arrays):
        """The candidate a call on ``arrays`` would run (its values decide among the
        plan's candidates), without running it."""
        present = self._check(arrays)
        return self.pick(present, values.facts(self.spec, present))

    def pick(self, present, found):
        """The first of the plan's candidates that ``found`` (values.Facts) allows and,
        where it needs one, that ``present`` certifies (None: not certified)."""
        for choice in self._candidates():
            if choice.allows(found.finite, found.int_bound) and not (
                    choice.certified and present is not None
                    and values.certify(choice.candidate, self.spec, present)):
                return choice.candidate
        raise ValueError(self._refusal(present, found))

    def _refusal(self, present, found) -> str:
        reasons = list(self.skipped)
        for choice in self.choices:
            reason = (values.ineligible(choice.candidate, self.spec, found, self.accuracy)
                      or (choice.certified and present is not None
                          and values.certify(choice.candidate, self.spec, present)))
            if reason:
                reasons.append(f"{choice.candidate.name}: {reason}")
        if self.algorithm is not None:
            return f"algorithm={self.algorithm!r} cannot run this call: " + "; ".join(reasons)
        return f"no algorithm can run {self.spec.id}: " + "; ".join(reasons)

    def _check(self, arrays):
        names = self.arrays
        if len(arrays) > len(names) or len(arrays) < len(self.spec.shapes):
            raise TypeError(f"this plan takes the arrays {names} ({len(self.spec.shapes)} "
                            f"given when it was made), got {len(arrays)}")
        lib, arrays = as_arrays(arrays, names[:len(arrays)])
        present = tuple(a for a in arrays if a is not None)
        got = tuple((tuple(a.shape), xp.dtype_name(a)) for a in present)
        want = tuple(zip(self.spec.shapes, self.spec.dtypes))
        if lib != self.library or got != want or _device(present[0]) != self.device:
            made = ", ".join(f"{n} {s} {d}" for n, (s, d) in zip(names, want))
            given = ", ".join(f"{n} {s} {d}" for n, (s, d) in zip(names, got))
            raise ValueError(f"this plan was made for {self.library} arrays on {self.device} "
                             f"({made}); got {lib} arrays on {_device(present[0])} ({given}): "
                             "make a new plan (or call the op's function, which caches plans)")
        return present

    # -- explaining ---------------------------------------------------------------------
    def explain(self) -> str:
        """Which candidate runs, why, its error model, what it keeps; the alternatives."""
        choices = self.choices
        first = choices[0]
        c = first.candidate
        lines = [f"plan for {self.spec.id} on {self.library} arrays ({self.device})",
                 f"runs: {c.name} ({c.key}{', from ' + c.package if getattr(c, 'package', None) else ''})",
                 f"why: {self.why}",
                 f"error model: {c.error_model(self.spec)}"
                 + ("" if not first.certified else
                    " (certified per call against the elementwise contract)"),
                 f"keeps: {_keeps(c)}",
                 f"per call: {_per_call(self, first)}"]
        if len(choices) > 1:
            lines.append("then, when a call's values rule out the one before: "
                         + ", ".join(ch.candidate.name for ch in choices[1:]))
        if self.skipped:
            lines.append("not eligible here: " + "; ".join(self.skipped))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<convbench plan {self.spec.id} -> {self._resolved[0].candidate.name}>"


def _keeps(candidate) -> str:
    module = candidate.module if candidate.module_path else None
    caches = [(name, v) for name, v in vars(module).items()
              if hasattr(v, "info") and hasattr(v, "get") and callable(v.info)] if module else []
    if not caches:
        return "nothing derived from the values (the spec and the choice only)"
    parts = []
    for name, cache in caches:
        info = cache.info()
        parts.append(f"{candidate.module_path}.{name}: {info['entries']} kernel(s), "
                     f"{info['bytes'] / 2**20:.1f} MiB, {info['hits']} hits / {info['misses']} misses")
    return "; ".join(parts)


def _per_call(plan, choice) -> str:
    checks = []
    if plan._float_arrays:
        checks.append("a finite-values check")
    if plan._exact_int:
        checks.append("the integer sum bound")
    if choice.certified:
        checks.append("the certificate of its bound")
    checks.append("free memory")
    return ", ".join(checks) or "nothing"


def _stored(a):
    """Each value of ``a`` once where a zero stride repeats it along an axis (the expanded
    gradient of a sum, a broadcast): the finite check reads no more than that."""
    return a[tuple(slice(0, 1) if s == 0 else slice(None) for s in a.strides)]


def _finite(a) -> bool:
    """No NaN or Inf in ``a`` (a floating array): one dot product, finite when every value
    is; only when it is not (an overflow, or a NaN/Inf) is every value looked at."""
    if type(a) is np.ndarray:
        if a.dtype.kind == "f" and _isfinite(_vdot(a, a)):
            return True
        return bool(np.isfinite(a).all())
    return values.all_finite(a)


def _numpy_of(out):
    """A candidate's tensor result as numpy: its memory when it is a plain CPU tensor
    (each of them for an op with several outputs)."""
    if type(out) is tuple:
        return tuple(o if type(o) is _ndarray else _numpy_of(o) for o in out)
    try:
        return out.numpy()
    except (AttributeError, RuntimeError, TypeError):   # on a GPU, needing grad, bfloat16
        return xp.to_numpy(out)


def _torch_from_numpy(a):
    import torch

    return torch.from_numpy(a if a.flags.c_contiguous else np.ascontiguousarray(a))


def _host_view(t):
    """A CPU tensor's numpy view (a copy only for bfloat16, which numpy lacks)."""
    try:
        return t.numpy()
    except RuntimeError:        # a tensor that requires grad
        return t.detach().numpy()
    except TypeError:           # bfloat16
        return xp.to_numpy(t)


def _array_names(spec) -> tuple[str, ...]:
    return spec.operation.arrays


def _device(a) -> str:
    lib = xp.library_of(a)
    if lib == "torch":
        return a.device.type if a.device.type == "cpu" else str(a.device)
    return "gpu" if lib == "cupy" else "cpu"


def as_arrays(arrays, names):
    """(library, arrays): one array library for all, numpy arguments as ndarrays; a clear
    error naming the argument otherwise."""
    for a, name in zip(arrays, names):
        if a is None and name != "bias":
            raise TypeError(f"{name} must be an array, got None")
    lib = xp.common_library(arrays, names)
    if lib == "numpy":
        arrays = tuple(None if a is None else xp.as_numpy_argument(a, name)
                       for a, name in zip(arrays, names))
    return lib, arrays


def _named_candidate(op: str, algorithm):
    if not isinstance(algorithm, str):
        raise TypeError(f"algorithm must be a candidate name (a str, see `convbench list`) or "
                        f"None, got {algorithm!r}")
    try:
        return registry.get(op, algorithm)
    except ValueError as exc:
        raise ValueError(f"algorithm={algorithm!r}: {exc}") from None


def make(op: str, arrays, kwargs: dict, algorithm=None, accuracy: str = "elementwise",
         *, shapes=None, dtypes=None, library: str = "numpy", device: str = "cpu") -> Plan:
    """A plan from example ``arrays`` (their shapes, dtypes, library, device and the
    kernel's values), or from ``shapes`` and ``dtypes`` alone."""
    from convbench.spec import Spec

    if shapes is None and any(type(a).__module__.startswith("dask") for a in arrays):
        from convbench import dask_arrays      # a lazy result, chunk by chunk

        return dask_arrays.make(op, arrays, kwargs, algorithm, accuracy)
    values.check_accuracy(accuracy)
    kernel = None
    if shapes is None:
        names = _op_arrays(op)
        lib, arrays = as_arrays(arrays, names[:len(arrays)])
        present = [a for a in arrays if a is not None]
        if not present:
            raise TypeError(f"plan({op!r}) needs example arrays {names} or shapes=")
        spec = Spec.make(op, [tuple(a.shape) for a in present],
                         [xp.dtype_name(a) for a in present], **kwargs)
        library, device = lib, _device(present[0])
        spec.check_memory(present[0])          # before anything reads the values
        if spec.op in KERNEL_VALUE_OPS:
            kernel = xp.to_numpy(present[1])
    else:
        if library not in xp.LIBRARIES:
            raise ValueError(f"library must be one of {xp.LIBRARIES}, got {library!r}")
        if isinstance(dtypes, str) or dtypes is None:
            dtypes = (dtypes or "float32",) * len(shapes)
        spec = Spec.make(op, shapes, dtypes, **kwargs)
    return Plan(spec, library, device, algorithm, accuracy, kernel)



def _op_arrays(op):
    from convbench.ops import get_op

    return get_op(op).arrays


# -- the public functions' plan cache ------------------------------------------------------
_cache: collections.OrderedDict = collections.OrderedDict()
_cache_lock = threading.Lock()
_stats = {"misses": 0}


def _describe(a):
    """What the choice reads of an argument other than an ndarray (those are keyed inline):
    hashable; TypeError for arguments that take the uncached path (lists, other types)."""
    if a is None:
        return ()
    t = type(a)
    if t is _tensor_type() and not a.requires_grad:
        return (t, a.shape, a.dtype, a.device)
    raise TypeError("not cached")       # (a tensor needing grad: see _route)


_tensor = {"type": None}


def _tensor_type():
    """torch.Tensor once torch is imported (by the caller: convbench never imports it for
    a numpy call), else None."""
    t = _tensor["type"]
    if t is None:
        torch = sys.modules.get("torch")
        if torch is not None:
            t = _tensor["type"] = torch.Tensor
    return t


TABLE_CHECK_S = 1.0     # how often the choice table's file is looked at (plans follow it)
_table = {"next_check": -math.inf, "stamp": None}


def _check_table() -> None:
    """Forget every plan when the choice table in use changed (``convbench tune`` wrote
    one, or CONVBENCH_CACHE points elsewhere): noticed within TABLE_CHECK_S."""
    from convbench import choose

    stamp = choose.table_stamp()
    if stamp != _table["stamp"]:
        clear_cache()
        _table["stamp"] = stamp
    _table["next_check"] = time.monotonic() + TABLE_CHECK_S


def _kernel_key(w):
    """The kernel's bytes; TypeError (the uncached path) for a large kernel, whose call
    costs far more than planning it."""
    if w is None:
        raise TypeError("not cached")
    if type(w) is not np.ndarray:
        if math.prod(w.shape) * w.element_size() > KERNEL_BYTES_IN_KEY:
            raise TypeError("not cached")
        w = _host_view(w) if not w.is_cuda else xp.to_numpy(w)   # the choice reads them
    if w.nbytes > KERNEL_BYTES_IN_KEY:
        raise TypeError("not cached")
    return w.tobytes()


def cached(op: str, arrays: tuple, names: tuple, params: tuple, algorithm, accuracy):
    """Run ``op`` through the plan cache. ``params`` are the op's keyword values in its
    record's order, as the caller gave them (their types are part of the key: 0, 0.0 and
    False are equal in Python, not to validation). Strides are not part of the key:
    nothing a plan holds depends on them."""
    now = _monotonic()
    if now > _table["next_check"]:
        _check_table()
    try:
        described = tuple([(a.shape, a.dtype) if type(a) is _ndarray else _describe(a)
                           for a in arrays])
        kernel = None
        if op in KERNEL_VALUE_OPS:
            w = arrays[1]
            kernel = w.tobytes() if type(w) is _ndarray and w.nbytes <= KERNEL_BYTES_IN_KEY \
                else _kernel_key(w)
        key = (op, algorithm, accuracy, params, tuple(map(type, params)), described, kernel)
        plan = _cache.get(key)
    except TypeError:           # unhashable keywords, lists for arrays: the uncached path
        key = plan = None
    if plan is None:
        return _miss(op, arrays, names, params, algorithm, accuracy, key)
    try:
        _cache.move_to_end(key)
    except KeyError:            # dropped by another thread meanwhile
        pass
    if arrays[-1] is None:      # only bias may be None
        arrays = arrays[:-1]
    fast = plan.fast
    if fast is not None:
        out = fast(arrays, machine.available_memory(now))
        if out is not SLOW:
            return out
    return plan.run(arrays, op in KERNEL_VALUE_OPS)


def _route(arrays):
    """The function that runs a call the plans do not run themselves, or None:
    dask arrays go chunk by chunk (convbench.dask_arrays, a lazy result), tensors that
    require grad (with grad mode on) go through the torch operators (convbench.torch_ops),
    which record the graph and run these plans inside."""
    lib = None
    for a in arrays:
        if a is not None:
            module = type(a).__module__
            if module.startswith("dask"):
                from convbench import dask_arrays

                return dask_arrays.apply
            if module.startswith("torch"):
                lib = "torch"
    if lib == "torch":
        import torch

        if torch.is_grad_enabled() and any(getattr(a, "requires_grad", False) for a in arrays):
            from convbench import torch_ops

            return torch_ops.apply
    return None


def _miss(op, arrays, names, params, algorithm, accuracy, key):
    """Plan a call (cached under ``key`` unless None) and run it."""
    route = _route(arrays)
    if route is not None:
        return route(op, arrays, names, params, algorithm, accuracy)
    _stats["misses"] += 1
    kwargs = dict(zip(_param_names(op), params))
    plan = make(op, arrays, kwargs, algorithm, accuracy)
    _, converted = as_arrays(arrays, names)
    if key is not None and all(a is b for a, b in zip(converted, arrays)):
        # (a converted argument, e.g. non-native byte order, is planned afresh each call)
        with _cache_lock:
            _cache[key] = plan
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    present = converted if converted[-1] is not None else converted[:-1]
    return plan.run(present, key is not None and op in KERNEL_VALUE_OPS)


def _param_names(op):
    from convbench.ops import get_op

    return [k for k, _ in get_op(op).defaults]


def cache_info() -> dict:
    """Misses (plans made) and size of the public functions' plan cache."""
    return {**_stats, "size": len(_cache), "max_size": CACHE_SIZE}


def clear_cache() -> None:
    """Forget every cached plan (the next call of each kind plans afresh)."""
    with _cache_lock:
        _cache.clear()
        _stats.update(misses=0)

"""Pooling ops: max_pool, avg_pool, lp_pool and their gradients (torch's meanings; the
oracles in refimpl/pool.py define them, refimpl.geometry computes every shape).

Signatures are the oracles' own: ``max_pool(x, kernel_size, stride=None, padding=0,
dilation=1, ceil_mode=False)``, ``avg_pool(x, ..., ceil_mode=False, count_include_pad=True,
divisor_override=None)``, ``lp_pool(x, norm_type, kernel_size, stride=None,
ceil_mode=False)``; ``max_pool_grad(dy, x, ...)``, ``avg_pool_grad(dy, input_shape, ...)``,
``lp_pool_grad(dy, x, norm_type, ...)`` with the forward op's keywords.

Error bounds (convbench.tolerance, 'direct' model: gamma_K * absref, plus one final
rounding for float16 and bfloat16 results, which must be accumulated in float32):

max_pool       exact: a comparison never rounds (candidates declare ERROR = "exact").
avg_pool       K = window size + 1: K-1 additions, one division by the divisor, and one
               more rounding for a candidate that multiplies by a rounded 1/D. absref =
               avg_pool(|x|) with |divisor_override| (a negative divisor would make the
               scale negative).
max_pool_grad  a sum of the dy of the windows that chose an element: K = W, the most
               windows that read one input position (per axis: the most kernel offsets j
               with the same j*d mod s). absref must route |dy| exactly as dy is routed:
               max_pool_grad(|dy|, x) with x SIGNED. The generic op(|inputs|) =
               max_pool_grad(|dy|, |x|) is NOT a bound: |x| moves the argmax (with
               all-negative inputs it picks the smallest x), so an element that receives
               a rounded sum of two or more dy gets a tolerance of 0.
avg_pool_grad  K = W + 1 (each dy / D rounds once or twice, then W - 1 additions).
lp_pool        see _lp_terms: sum of A/m * x**p, then the 1/p root. With no cancellation
               in the sum (p even or non-integer, x >= 0, or p = 1 where the op is
               linear) absref = lp_pool(|x|) is a bound. For an odd p != 1 and signed x
               the sum can cancel and the root amplifies its error without limit near 0:
               error_scale() then adds the propagated error explicitly (and is infinite
               for a window whose sum is within its own rounding error of zero).
               norm_type = +-inf is a max of |x|: exact.
lp_pool_grad   see _lp_grad_terms; the same cancellation caveat, the same remedy.

``error_scale(spec, arrays, points=None)`` returns the right absref for every op here
(``verification.reference`` asks it).
"""
from __future__ import annotations

import math
import numbers
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from convbench.dtypes import ACCUMULATION, UNIT_ROUNDOFF, float_result
from convbench.cases import pool as cases
from convbench.ops import REQUIRED, Asv, Operation, nbytes
from convbench.tolerance import gamma
from refimpl import pool as ref
from refimpl.geometry import as_tuple, pool_output_shape

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")

# Largest |ln t| over the positive finite numbers of a compute type (ln of the smallest
# subnormal): the most a rounded exponent e(1 + eps) can move t**e, relatively, is
# |e| * eps * |ln t| <= |e| * u * LOG_RANGE.
LOG_RANGE = {"float32": -math.log(np.finfo(np.float32).smallest_subnormal),   # 103.3
             "float64": -math.log(np.finfo(np.float64).smallest_subnormal)}   # 744.4

_SHAPE_PARAMS = ("kernel_size", "stride", "padding", "dilation")


def _compute_dtype(spec) -> str:
    """The type a correct candidate computes in: float64 for float64 results, else float32."""
    return "float64" if float_result(spec.dtypes, spec.dtypes) == "float64" else "float32"


def _numpy_dtypes(dtypes) -> tuple[str, ...]:
    """The dtypes as refimpl's shape checks read them: a bfloat16 tensor's values are
    float32 ones (numpy has no bfloat16)."""
    return tuple("float32" if d == "bfloat16" else d for d in dtypes)


def _exponent_terms(e: Fraction, compute: str) -> int:
    """Extra terms for an exponent (an exact rational: 1/3, -2/3) that the compute type
    cannot hold exactly: it is rounded before the pow, by the candidate as by the oracle."""
    if e == 0 or Fraction(float(np.dtype(compute).type(float(e)))) == e:
        return 0
    return math.ceil(abs(float(e)) * LOG_RANGE[compute])


@dataclass(frozen=True)
class Pool(Operation):
    """One of the six pooling ops; ``forward`` names the forward op of a gradient."""

    forward: str = ""

    @property
    def is_grad(self) -> bool:
        return self.name != self.forward

    # -- signature -------------------------------------------------------------------
    def normalize(self, shapes, dtypes, kwargs) -> dict:
        params = super().normalize(shapes, dtypes, kwargs)
        for name, dtype in zip(self.arrays, dtypes):
            if dtype not in FLOAT_DTYPES:
                raise TypeError(f"{name} must be float16, float32 or float64 (or a bfloat16 "
                                f"tensor) for {self.name}, got {dtype} (convert integer images "
                                f"first, e.g. {name}.astype(np.float32))")
        float_result(self.arrays, dtypes)        # bfloat16 only beside bfloat16
        for key in _SHAPE_PARAMS:
            if key in params:
                params[key] = _int_or_tuple(params[key], key)
        for key in ("ceil_mode", "count_include_pad"):
            if isinstance(params.get(key), np.bool_):
                params[key] = bool(params[key])
        if isinstance(params.get("divisor_override"), np.integer):
            params["divisor_override"] = int(params["divisor_override"])
        if params.get("input_shape") is not None:
            params["input_shape"] = _int_or_tuple(params["input_shape"], "input_shape")
        p = params.get("norm_type")
        if p is not None and not isinstance(p, bool) and isinstance(p, numbers.Real):
            p = float(p)
            params["norm_type"] = int(p) if math.isfinite(p) and p.is_integer() else p
        ref.validate(self.name, shapes, _numpy_dtypes(dtypes), **params)
        return params

    def result_dtype(self, spec) -> np.dtype:
        """numpy's result dtype; TypeError for bfloat16 (convbench.dtypes.float_result)."""
        return np.result_type(*[np.dtype(d) for d in spec.dtypes])

    # -- geometry --------------------------------------------------------------------
    def output_shape(self, spec) -> tuple[int, ...]:
        return ref.validate(self.name, spec.shapes, _numpy_dtypes(spec.dtypes), **spec.kwargs)

    def geometry(self, spec):
        """(input shape, forward output shape, kernel, stride, padding, dilation) per axis."""
        kw = spec.kwargs
        in_shape = tuple(kw["input_shape"]) if self.name == "avg_pool_grad" else spec.shapes[-1]
        n = len(in_shape) - 2
        kernel = as_tuple(kw["kernel_size"], n, "kernel_size")
        stride = kernel if kw.get("stride") is None else as_tuple(kw["stride"], n, "stride")
        padding = as_tuple(kw.get("padding", 0), n, "padding")
        dilation = as_tuple(kw.get("dilation", 1), n, "dilation")
        out = pool_output_shape(in_shape[2:], kernel, stride, padding, dilation,
                                kw.get("ceil_mode", False))
        return in_shape, in_shape[:2] + out, kernel, stride, padding, dilation

    def temporaries(self, spec):
        """A copy of the input padded on both sides of every axis."""
        in_shape, _, _, _, padding, _ = self.geometry(spec)
        padded = list(in_shape[:2]) + [n + 2 * p for n, p in zip(in_shape[2:], padding)]
        return {"padded copy": nbytes(padded, float_result(spec.dtypes, spec.dtypes))}

    def window_overlap(self, spec) -> int:
        """W: the most windows that read one input position (product over the axes of the
        most kernel offsets j that share j*d mod s)."""
        _, _, kernel, stride, _, dilation = self.geometry(spec)
        return math.prod(max(Counter((j * d) % s for j in range(k)).values())
                         for k, s, d in zip(kernel, stride, dilation))

    def border_zones(self, spec):
        """Forward: per output axis, the leading windows that read padding and the trailing
        ones that read beyond the input (padding or a ceil_mode overhang). Gradients:
        per input axis, the positions near each end whose windows are such windows or
        that fewer windows cover (the span of a window plus a stride, generously)."""
        in_shape, out_shape, kernel, stride, padding, dilation = self.geometry(spec)
        zones = [(0, 0), (0, 0)]
        for n, o, k, s, p, d in zip(in_shape[2:], out_shape[2:], kernel, stride, padding,
                                    dilation):
            span = (k - 1) * d + 1
            if not self.is_grad:
                lo = min(o, -(-p // s))
                last_inside = n - 1 + p - (k - 1) * d      # o*s must not exceed this
                inside = min(o, last_inside // s + 1) if last_inside >= 0 else 0
                zones.append((lo, o - inside))
            else:
                zones.append((min(n, span + s), n - max(0, min(n, (o - 1) * s - p - span))))
        return tuple(zones)

    # -- oracle ----------------------------------------------------------------------
    def oracle(self, spec, arrays):
        return getattr(ref, self.name)(*arrays, **spec.kwargs)

    def oracle_at(self, spec, arrays, index):
        return getattr(ref, f"{self.name}_at")(*arrays, index=tuple(index), **spec.kwargs)

    def work(self, spec) -> float:
        """Window reads of the oracle: forward outputs times the window size."""
        _, out_shape, kernel, *_ = self.geometry(spec)
        return float(math.prod(out_shape) * math.prod(kernel))

    # -- error bound -----------------------------------------------------------------
    def terms(self, spec) -> int:
        _, _, kernel, *_ = self.geometry(spec)
        window = math.prod(kernel)
        p = spec.kwargs.get("norm_type")
        if self.forward == "max_pool" or p in (math.inf, -math.inf):
            return window if not self.is_grad else self.window_overlap(spec)
        if self.name == "avg_pool":
            return window + 1
        if self.name == "avg_pool_grad":
            return self.window_overlap(spec) + 1
        if self.name == "lp_pool":
            return _lp_terms(window, float(p), _compute_dtype(spec))
        return _lp_grad_terms(window, self.window_overlap(spec), float(p), _compute_dtype(spec))

    def error_scale(self, spec, arrays, points=None) -> np.ndarray:
        """absref of the error bound: the whole output's, or at ``points`` (index arrays,
        as verification.sample_points gives them). See the module docstring for why the
        generic op(|inputs|) is replaced here."""
        with np.errstate(all="ignore"):
            if self.forward == "lp_pool" and _lp_cancels(spec, arrays[-1]):
                out = self._lp_cancelling_scale(spec, arrays)
                return out if points is None else out[points]
            scale_spec, scale_arrays = self._scale_inputs(spec, arrays)
            if points is None:
                return self.oracle(scale_spec, scale_arrays)
            return np.array([self.oracle_at(scale_spec, scale_arrays, i) for i in zip(*points)])

    def _scale_inputs(self, spec, arrays):
        """The spec and arrays whose oracle value is absref (no cancellation case)."""
        a = tuple(np.abs(np.asarray(v, dtype=np.float64)) for v in arrays)
        if self.name == "max_pool_grad":
            a = (a[0], np.asarray(arrays[1], dtype=np.float64))   # x signed: same routing
        d = spec.kwargs.get("divisor_override")
        if d is not None and d < 0:
            spec = spec.replace(divisor_override=-d)
        return spec, a

    def _lp_cancelling_scale(self, spec, arrays):
        """absref for lp with an odd integer p != 1 and signed x (whole output).

        With T = terms(spec) and u the compute type's unit roundoff, each window's power
        sum v = A/m * sum x**p is computed within E = gamma_T * S, S = A/m * sum |x|**p.
        Forward: y = v**q (q = 1/p) moves by at most |q| * max(|v| -+ E)**(q-1) * E when
        |v| > E (mean value theorem), by E**q when |v| <= E and p >= 1 (q-Hoelder), and
        without limit when |v| <= E and p < 0. Gradient: v**(q-1) moves by at most
        |q-1| * max(|v| -+ E)**(q-2) * E per window, without limit when |v| <= E.
        absref = the rounding scale of the no-cancellation case + propagated error / gamma_T.
        """
        kw = spec.kwargs
        p = float(kw["norm_type"])
        q = 1.0 / p
        x = np.asarray(arrays[-1], dtype=np.float64)
        kernel, stride, ceil = kw["kernel_size"], kw.get("stride"), kw.get("ceil_mode", False)
        area = math.prod(self.geometry(spec)[2])
        g = gamma(self.terms(spec), UNIT_ROUNDOFF[ACCUMULATION[_compute_dtype(spec)]])
        v = area * ref.avg_pool(x ** p, kernel, stride, 0, ceil)
        s = area * ref.avg_pool(np.abs(x) ** p, kernel, stride, 0, ceil)
        e = g * s
        av = np.abs(v)
        near = np.maximum(av - e, 0.0)
        if self.name == "lp_pool":
            slope = np.maximum(near ** (q - 1.0), (av + e) ** (q - 1.0))
            unstable = e ** q if p >= 1 else np.inf
            prop = np.where(av > e, abs(q) * slope * e, unstable)
            return np.maximum(s ** q, av ** q) + prop / g   # |y| >= S**q when p < 0
        dy = np.abs(np.asarray(arrays[0], dtype=np.float64))
        slope = np.maximum(near ** (q - 2.0), (av + e) ** (q - 2.0))
        per_window = np.where(av > e, av ** (q - 1.0) + abs(q - 1.0) * slope * s, np.inf)
        h = np.where(dy == 0, 0.0, dy * per_window)
        summed = area * ref.avg_pool_grad(h, x.shape, kernel, stride, 0, ceil)
        xpow = np.abs(x) ** (p - 1.0)
        return np.where(xpow == 0, 0.0, xpow * summed)


def _int_or_tuple(value, name):
    """An int stays an int, a sequence becomes a tuple of ints (hashable, as given);
    anything else is left for refimpl's checks to refuse with its own message."""
    if isinstance(value, (numbers.Integral,)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (list, tuple, np.ndarray)):
        items = tuple(value)
        if not all(isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))
                   for v in items):
            raise TypeError(f"{name} must be an int or a sequence of ints, got {value!r}")
        return tuple(int(v) for v in items)
    return value


def _lp_terms(window: int, p: float, compute: str) -> int:
    """K for lp_pool's 'direct' bound, finite p, q = 1/p (Higham's gamma arithmetic):

    sum   each x**p rounds <= 3 times (pow within 1 ulp = 2u, or x*x*x), plus its exponent's
          rounding if p is not representable; window - 1 additions; the A/m scaling
          (divide by m, multiply by A) 2 more: v_hat = sum of (A/m) x**p (1 + theta_K1),
          K1 = window + 4 (+ exponent terms), so |v_hat - v| <= gamma_K1 * S with S the
          same sum of |x|**p. With no cancellation |v| = S: a relative error.
    root  (1 + theta)**q - 1 is at most max(1, |q|) * theta (to first order), the pow rounds
          once more (2u), and a q the compute type cannot hold (1/3) moves v**q by
          |q| * u * |ln v| <= |q| * u * LOG_RANGE.
    So |y_hat - y| <= gamma_K * |y| with the K below, and |y| = lp_pool(|x|) = absref.
    """
    p = Fraction(p)
    k1 = window + 4 + _exponent_terms(p, compute)
    return math.ceil(max(1.0, abs(float(1 / p))) * k1) + 2 + _exponent_terms(1 / p, compute)


def _lp_grad_terms(window: int, overlap: int, p: float, compute: str) -> int:
    """K for lp_pool_grad's 'direct' bound, finite p:

        dx_i = p x_i**(p-1) * sum over the (<= W) windows o reading i of A/m_o * g_o,
        g_o  = dy_o * (1/p) * v_o**(q-1)

    v_o carries gamma_K1 (see _lp_terms), which v**(q-1) turns into |q-1| * K1 terms;
    pow 2, its exponent q-1 if not representable; dy * (1/p) 2 (1/p rounded); times
    v**(q-1) 1; A/m 2; W-1 additions; times p 1; x**(p-1) 2 (+ its exponent) and the
    product 1. Each summand's relative error is then within gamma_K and absref =
    lp_pool_grad(|dy|, |x|) is the sum of |summands| (no cancellation in v).
    """
    p = Fraction(p)
    k1 = window + 4 + _exponent_terms(p, compute)
    return (overlap - 1 + math.ceil(abs(float(1 / p - 1)) * k1) + 11
            + _exponent_terms(1 / p - 1, compute) + _exponent_terms(p - 1, compute))


def _lp_cancels(spec, x) -> bool:
    """Can lp's power sum cancel? Only for an odd integer p != 1 with some negative x
    (p = 1 is linear: its error is within gamma_K * sum |x| directly)."""
    p = float(spec.kwargs["norm_type"])
    if not math.isfinite(p) or not p.is_integer() or p % 2 == 0 or p == 1:
        return False
    with np.errstate(invalid="ignore"):
        return bool(np.any(np.asarray(x) < 0))


_MAX = (("kernel_size", REQUIRED), ("stride", None), ("padding", 0), ("dilation", 1),
        ("ceil_mode", False))
_AVG = (("kernel_size", REQUIRED), ("stride", None), ("padding", 0), ("ceil_mode", False),
        ("count_include_pad", True), ("divisor_override", None))
_LP = (("norm_type", REQUIRED), ("kernel_size", REQUIRED), ("stride", None), ("ceil_mode", False))

# Every pooling op and gradient runs on these (one module, one function per op).
_CANDIDATES = {"strided_numpy": "candidates.pool.strided_numpy",
               "pool_torch": "candidates.pool.pool_torch",
               "cudnn_torch": "candidates.pool.cudnn_torch"}
_PEERS = frozenset({"pool_torch", "cudnn_torch"})
# "torch" means tensors on a GPU (CPU tensors get the numpy choice). On the CPU, by the
# measured medians of both on the seed CNN's pools (2x2 on N x 3 x 24 x 24 and N x 6 x 8 x 8,
# N = 64 and 1000) and the ResNet/VGG layer shapes (one thread, numpy arrays and CPU
# tensors alike): max_pool: strided_numpy (pool_torch 1.0-2.8x its time); max_pool_grad:
# pool_torch (0.22-0.48x strided_numpy's: one scatter of torch's indices against a pass
# per window tap); avg_pool and avg_pool_grad: pool_torch (0.19-0.36x on global average
# pools, 0.5-0.75x on the seed's second pool and ResNet's stem at N = 8, 0.9-1.46x on the
# small windows of one image or the seed's first pool); lp_pool: strided_numpy.
_STRIDED_FIRST = {"numpy": ("strided_numpy", "pool_torch"),
                  "torch": ("cudnn_torch", "pool_torch", "strided_numpy")}
_TORCH_FIRST = {"numpy": ("pool_torch", "strided_numpy"), "torch": _STRIDED_FIRST["torch"]}
_POOL = dict(candidates=_CANDIDATES, peers=_PEERS)

OPS = {
    "max_pool": Pool(
        "max_pool", ("x",), _MAX, forward="max_pool", **_POOL, preference=_STRIDED_FIRST,
        suites={"small": cases.small_max_cases, "quick": cases.quick_pool_cases,
                "layers": cases.layer_pool_cases,
                "bfloat16": cases.bfloat16_cases},
        asv=Asv(time=(("quick", 1), ("layers", 1)), peakmem=1),
    ),
    "max_pool_grad": Pool(
        "max_pool_grad", ("dy", "x"), _MAX, forward="max_pool", **_POOL, preference=_TORCH_FIRST,
        suites={"small": cases.small_max_cases, "layers": cases.layer_pool_cases,
                "bfloat16": cases.bfloat16_cases},
        asv=Asv(time=(("layers", 1),)),
    ),
    "avg_pool": Pool(
        "avg_pool", ("x",), _AVG, forward="avg_pool", **_POOL, preference=_TORCH_FIRST,
        suites={"small": cases.small_avg_cases, "layers": cases.layer_pool_cases,
                "bfloat16": cases.bfloat16_cases},
        asv=Asv(time=(("layers", 1),)),
    ),
    "avg_pool_grad": Pool(
        "avg_pool_grad", ("dy",), (("input_shape", REQUIRED),) + _AVG, forward="avg_pool",
        **_POOL, preference=_TORCH_FIRST,
        suites={"small": cases.small_avg_cases, "layers": cases.layer_pool_cases,
                "bfloat16": cases.bfloat16_cases},
    ),
    "lp_pool": Pool(
        "lp_pool", ("x",), _LP, forward="lp_pool", **_POOL, preference=_STRIDED_FIRST,
        suites={"small": cases.small_lp_cases,
                "bfloat16": cases.bfloat16_cases},
    ),
    "lp_pool_grad": Pool(
        "lp_pool_grad", ("dy", "x"), _LP, forward="lp_pool", **_POOL, preference=_STRIDED_FIRST,
        suites={"small": cases.small_lp_cases,
                "bfloat16": cases.bfloat16_cases},
    ),
}

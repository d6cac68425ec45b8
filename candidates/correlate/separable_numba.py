# separable_numba: a kernel that is a sum of r outer products u_i (x) v_i runs as r chains
# of two 1-D passes, each pass direct_numba's tiled SIMD loop with a 1-D kernel.
#
#   x (H x W) --pass along W: 1 x kw kernel v_i, border on W--> t (H x W')
#             --pass along H: kh x 1 kernel u_i, border on H--> y_i (H' x W')
#   y = y_0 + ... + y_{r-1}          (rank 1: Gaussian, box, Sobel, 1-D kernels)
#
# Algorithm: the rank test, the factors and the per-tap certificate are separable_numpy's
#   (SVD rank with a threshold tied to the 'direct' bound, cross-approximation factors
#   that keep zero taps zero, a float64 certificate that the rounded factors and the
#   2 x (kh + kw) roundings of the passes stay within gamma_K (|w| (*) |x|)); only the
#   passes differ: separable_numpy runs banded matrix products on BLAS, this runs each
#   pass as a direct 1-D correlation in numba, vectorised along the rows (both passes
#   read contiguous rows: the W pass shifted loads, the H pass whole rows), tiled for
#   L1/L2 and threaded (candidates.runtime.run_jobs).
#   Borders need no padded copy: the borders other than 'constant' read x through an
#   index map per axis (xp[i, j] = x[s0(i), s1(j)]), which commutes with a pass along
#   the other axis: the first pass's output extended by s0 is exactly the first pass over
#   the extended rows. A constant border extends the first pass's output by
#   cval * sum(v) (rounded once from float64; the pass itself would round up to kw
#   times). Every padding and origin: the first pass takes the W part of the padding,
#   the second the H part.
# Plan (per kernel values, cached in a candidates.runtime.KernelCache):
#   separable with r terms when r (kh + kw) <= kh kw / 2 and the certificate holds;
#   else the direct sum: direct_numba when the kernel has at most its MAX_TAPS taps,
#   separable_numpy's banded plan beyond. Kernels with more than two non-trivial axes,
#   and non-finite images with r > 1 (cancellation between terms would turn a lone Inf
#   into NaN), go to separable_numpy too. Rank 1 keeps the oracle's NaN/Inf placement:
#   w_t = u_a v_b has the sign and zero pattern of the product, and direct_numba keeps
#   zero taps in a tile holding a NaN or Inf.
# Wins: separable kernels from ~9x9 up (Gaussian sigma 2..20, box, Sobel-like): cost
#   2 (kh + kw) multiply-adds per pixel at SIMD speed; a 31x31 Gaussian on 1024^2 to
#   4096^2 float32 in a quarter to a fifth of filter2D's time.
# Does not win: small kernels (3x3, 5x5: filter2D's IPP loops and direct_numba's single
#   pass read the image once), non-separable kernels (the direct fallbacks above; FFT
#   wins beyond ~15x15), the gaussian op at large sigma (iir_numba is flat in sigma).
# Applies: every case separable_numpy applies to (real dtypes, every border, padding,
#   origin, out_dtype); integer images run the first pass through direct_numba's exact
#   integer path when the factor allows it, else float32/float64.
# Numerics: 'direct', by the certificate; the first pass is stored in the compute dtype
#   (float32 for float32/float16/integer images, float64 for float64 results), never in
#   a float16 or integer result dtype; the result is rounded once.
from __future__ import annotations

import numpy as np

from candidates.runtime import KernelCache
from refimpl.dtypes import image_compute_dtype, result_dtype, round_saturate
from refimpl.geometry import as_tuple, image_padding

LIBRARY = "numba"
DEVICE = "cpu"
ERROR = "direct"

CACHE_ENTRIES = 32
_cache = KernelCache(CACHE_ENTRIES)


def supports(spec):
    from candidates.correlate import separable_numpy

    for d in spec.dtypes:
        if d == "bfloat16" or d.startswith("complex"):
            return f"dtype {d} is not run through numba here"
    return separable_numpy.supports(spec)


def plan_for(w: np.ndarray, x_dtype) -> tuple:
    """('separable', axes, [(u, v)...]) | ('direct',) | ('fallback',) for kernel ``w`` on
    images of ``x_dtype`` (see the header)."""
    wc = np.ascontiguousarray(w)
    return _cache.get(wc, np.dtype(x_dtype).str, lambda: _make_plan(wc, x_dtype))


def _make_plan(wc: np.ndarray, x_dtype) -> tuple:
    from candidates.correlate import direct_numba, separable_numpy as sep

    compute = image_compute_dtype(x_dtype, wc.dtype)
    x_dtype = np.dtype(x_dtype)
    wide = x_dtype.kind in "iu" and np.iinfo(x_dtype).bits > np.finfo(compute).nmant + 1
    axes = tuple(a for a, k in enumerate(wc.shape) if k > 1)
    fits_direct = wc.size <= direct_numba.MAX_TAPS and len(axes) <= 2
    if len(axes) == 2 and np.all(np.isfinite(wc)) and np.any(wc):
        kh, kw = (wc.shape[a] for a in axes)
        rank, _ = sep.numerical_rank(wc.astype(np.float64), compute)
        if 1 <= rank <= sep.MAX_RANK and 2 * rank * (kh + kw) <= kh * kw:
            core = wc.astype(np.float64).reshape(kh, kw)
            terms = [[u.astype(compute), v.astype(compute)] for u, v in sep.cross_factors(core, rank)]
            if sep.certificate(wc.astype(np.float64), terms, compute, wide) <= 1.0:
                return ("separable", axes, [(u, v) for u, v in terms])
    return ("direct",) if fits_direct else ("fallback",)


def clear_cache() -> None:
    _cache.clear()


def _factor_kernel(factor: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = factor.shape[0]
    return factor.reshape(shape)


def first_pass_fill(border: str, cval: float, v: np.ndarray) -> float:
    """What the first pass gives outside the image on a constant border: cval * sum(v),
    rounded once (other borders are index maps: no value)."""
    if border != "constant":
        return 0.0
    return float(np.float64(cval) * np.sum(v, dtype=np.float64))


def correlate(x, w, *, border="constant", cval=0.0, padding="same", origin=0, out_dtype=None):
    from candidates.correlate import direct_numba, separable_numpy as sep

    x, w = np.asarray(x), np.asarray(w)
    kwargs = dict(border=border, cval=cval, padding=padding, origin=origin, out_dtype=out_dtype)
    image_padding(w.shape, padding, origin)        # the caller's mistakes, named, first
    plan = plan_for(w, x.dtype)
    if plan[0] == "direct":
        return direct_numba.correlate(x, w, **kwargs)
    if plan[0] == "fallback" or (len(plan[2]) > 1 and x.dtype.kind == "f"
                                 and not np.isfinite(np.add.reduce(x, axis=None))):
        return sep.correlate(x, w, **kwargs)
    _, (outer, inner), terms = plan   # inner: the later axis (rows of the array)
    compute = image_compute_dtype(x.dtype, w.dtype)
    origins = as_tuple(origin, w.ndim, "origin") if padding == "same" else (0,) * w.ndim
    # the inner axis first (shifted loads along rows), then the outer one
    along_inner = [0] * w.ndim
    along_inner[inner] = origins[inner]
    along_outer = [0] * w.ndim
    along_outer[outer] = origins[outer]
    y = None
    for u, v in terms:
        t = direct_numba.correlate(x, _factor_kernel(v, inner, w.ndim), border=border,
                                   cval=cval, padding=padding, origin=tuple(along_inner),
                                   out_dtype=compute)
        part = direct_numba.correlate(t, _factor_kernel(u, outer, w.ndim), border=border,
                                      cval=compute.type(first_pass_fill(border, cval, v)), padding=padding,
                                      origin=tuple(along_outer), out_dtype=compute)
        if y is None:
            y = part
        else:
            y += part
    out = result_dtype(x.dtype, w.dtype)
    if out_dtype is not None:
        return round_saturate(y, out_dtype)
    return y.astype(out, copy=False)

# separable_numpy: a kernel that is a sum of r outer products is applied as r chains of
# 1-D passes, each pass a banded (Toeplitz) matrix product on BLAS; any other kernel as a
# sum of 1-D passes over shifted views (the direct sum, same machinery).
#
#   x --extend by the border, once--> xp      w (kh, kw)  ~=  sum_{i<r} u_i (x) v_i
#
#   pass along the last axis (v, kw taps)        pass along axis 0 (u, kh taps)
#   blocks of B outputs share one (B+kw-1)xB     T (B x (B+kh-1)) @ rows [bB, bB+B+kh-1)
#   matrix:  xp[:, bB : bB+B+kw-1] @ T^T          of the intermediate, every column at once
#      T = [v0 v1 v2 0  0 ]                       (one batched np.matmul per pass; the
#          [0  v0 v1 v2 0 ]                        blocks are overlapping strided views,
#          [0  0  v0 v1 v2]                        no im2col copy)
#
#   y = sum_i  pass_0(u_i, pass_1(v_i, xp))     then crop, round/saturate for out_dtype
#
# Padding commutes with the passes: the N-D border extension of x (numpy.pad's meaning,
# corners included) is done once, and every pass is a 'valid' 1-D correlation, so the
# result is exact for every border, padding and origin (the extension runs a few samples
# further on the high side so that every pass works on whole blocks; those samples feed
# only outputs that are cropped).
#
# Which plan (decided per kernel VALUES at call time -- supports() sees only shapes -- and
# cached in an LRU of 32 plans keyed by the kernel's values (candidates.runtime.KernelCache)
# and the compute dtype, so the timing loop measures the filtering):
#   1. numerical rank r from the SVD (N-D: the largest rank of the mode unfoldings):
#      s_i counts when s_i > gamma_K * ||w||_F, K = number of taps, gamma_K = K u/(1 - K u),
#      u the unit roundoff of the compute dtype (float32 or float64). Why this threshold:
#      the 'direct' error model allows |y - y_ref| <= gamma_K (|w| (*) |x|), so a rank-r
#      stand-in w^ may differ from w by at most gamma_K |w| tap by tap; then
#      s_{r+1}(w) <= ||w - w^||_2 <= ||w - w^||_F <= gamma_K ||w||_F (Eckart-Young). A
#      singular value above the threshold can never be dropped; one below it may be.
#      (For a near-rank-1 kernel ||w||_F ~ s_1: the rule is s_i <= ~K u s_1. The SVD alone
#      is not enough -- it is normwise, the bound is tap by tap -- hence steps 2 and 3.)
#   2. factors by cross approximation (Gaussian elimination with complete pivoting):
#      u = w[:, q], v = w[p, :] / w[p, q] at the largest |w[p, q]|, then the same on the
#      residual. Unlike SVD vectors these keep every zero tap exactly zero (Sobel's middle
#      column) and tiny taps tiny (a 63x63 Gaussian's corners are 1e-17 of its centre,
#      where SVD factors would carry 1e-16 absolute errors: 10x the tap itself).
#   3. certificate, tap by tap, computed in float64 with the factors rounded to the compute
#      dtype, w^ = sum_i u^_i (x) v^_i and A = sum_i |u^_i| (x) |v^_i|:
#          |w^_t - w_t| + gamma_m A_t  <=  gamma_K |w_t|       for every tap t,
#      m = (sum of the pass lengths) + (r - 1) + (1 if the image's integers do not fit the
#      compute dtype's significand). Each pass sums its taps in some order (BLAS; the
#      Toeplitz zeros add exact zeros), the r terms are added one after another, so the
#      computed result is (w^ (*) x) within gamma_m (A (*) |x|); with the certificate the
#      total error is <= gamma_K (|w| (*) |x|): the 'direct' bound, proved for every image,
#      not only the test ones. A zero tap needs w^_t = A_t = 0 exactly.
#      Rank 1 always has A = |w^|; the float32 taps of a sampled Gaussian are rank 1
#      only to a few u, and the certificate still holds from 3x3 (ratio 0.76) to 63x63
#      (0.03); box and Sobel kernels are exactly rank 1. For r > 1, cancellation between
#      the terms (A_t >> |w_t|) can fail the certificate: then the direct plan is used.
#   4. cost (measured here, 1024^2 float32, 1 thread; ms per megapixel per pass): along
#      axis 0 F(k) = 0.4 + 0.03 k, along the last axis L(k) = 1.3 + 0.03 k, an addition
#      0.5. Rank r costs r (L(kw) + F(kh)) + (r-1) 0.5; the direct plan kw F(kh) +
#      (kw-1) 0.5 (or kh L(kw) + ...: passes of one axis over views shifted along the
#      other). The cheaper certified plan wins; roughly r (kh + kw) < kh kw / 2.
# Wins: large separable kernels (Gaussian sigma 5..20 at 31x31..63x63, box filters, 31x1):
#   cost grows with kh + kw, not kh * kw, and the passes run at GEMM speed (a 63x63
#   Gaussian on 1024^2 float32 in ~5-7 ms where filter2D takes ~14-20 ms and an FFT ~17).
# Does not win: 3x3..7x7 kernels (each pass costs a full BLAS sweep; OpenCV's SIMD loops
#   and direct_numba are faster), non-separable kernels above ~11x11 (the direct plan costs
#   ~kw passes; FFT wins), 1-D images (tiny matrices).
# Applies: every case except complex and bfloat16 dtypes. N-D kernels: rank 1 (outer
#   products of 1-D factors, tested on the mode unfoldings) or the direct plan when the
#   kernel has two adjacent non-trivial axes; other N-D kernels use a numpy shift-add
#   (slow, correct). Length-1 kernel axes are batch axes ((H, W, C) with (kh, kw, 1)).
#   Non-finite images: the banded products would spread a NaN over whole blocks (0 * inf),
#   so an image whose sum is not finite goes through the shift-add over all taps, whose
#   NaN/Inf placement is the oracle's.
# Numerics: 'direct' (see 3.): float32 images and float16/integer images in float32, float64
#   in float64; float16 rounded once at the end; an integer out_dtype rounds half to even
#   and saturates (refimpl.dtypes.round_saturate). The direct plan sums each product with
#   kh + kw - 1 <= K roundings.
# Threads: each pass is cut into chunks of rows/blocks handed out to
#   candidates.runtime.threads() threads (the caller works too) with BLAS pinned to one
#   thread meanwhile (threadpoolctl): OpenBLAS threading inside thousands of small banded
#   products gained little and stalled badly on this loaded 2-core machine. Scratch arrays
#   (padded image, intermediate passes) are per-thread buffers reused between calls
#   (at most runtime.SCRATCH_BYTES each; clear_cache() frees them).
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from candidates.runtime import KernelCache
from refimpl.dtypes import image_compute_dtype, result_dtype, round_saturate
from refimpl.geometry import image_output_shape, image_padding

LIBRARY = "numpy"
DEVICE = "cpu"
ERROR = "direct"

CACHE_ENTRIES = 32
MAX_RANK = 8                 # rank-r plans tried at most (more terms never pays here)

# cost model (ms per megapixel of output per pass, measured on 1024^2 float32, 1 thread)
COST_F = (0.4, 0.03)         # pass along a non-last axis: a + b k
COST_L = (1.3, 0.03)         # pass along the last axis
COST_ADD = 0.5
SMALL_COLUMNS = 64           # a non-last pass over fewer columns than this runs tiny GEMMs

_cache = KernelCache(CACHE_ENTRIES)


def supports(spec):
    for d in spec.dtypes:
        if d == "bfloat16":
            return "bfloat16 has no numpy dtype"
        if d.startswith("complex"):
            return "complex kernels are not factored here"
    return None


# ---------------------------------------------------------------------------------------
# Rank, factors, certificate
# ---------------------------------------------------------------------------------------

def unit_roundoff(dtype) -> float:
    return float(np.finfo(dtype).eps) / 2


def gamma(m: int, u: float) -> float:
    return math.inf if m * u >= 1 else m * u / (1 - m * u)


def rank_threshold(w, compute) -> float:
    """Singular values at or below this may be dropped: gamma_K * ||w||_F (header, 1.)."""
    w = np.asarray(w, dtype=np.float64)
    return gamma(w.size, unit_roundoff(compute)) * float(np.linalg.norm(w))


def numerical_rank(w, compute=np.float32) -> tuple[int, np.ndarray]:
    """(r, singular values): r counts the singular values above ``rank_threshold``.
    N-D kernels: the largest rank over the mode unfoldings of the non-trivial axes
    (rank 1 on every unfolding <=> an outer product of 1-D factors); the values returned
    are those of the unfolding of largest rank."""
    w = np.asarray(w, dtype=np.float64)
    core = w.reshape([k for k in w.shape if k > 1])
    if core.ndim < 2:
        s = np.array([np.abs(core).max()]) if core.size else np.zeros(1)
        return int(s[0] > 0), s
    threshold = rank_threshold(w, compute)
    best_r, best_s = -1, None
    for a in range(core.ndim if core.ndim > 2 else 1):
        unfolding = np.moveaxis(core, a, 0).reshape(core.shape[a], -1)
        s = np.linalg.svd(unfolding, compute_uv=False)
        r = int(np.count_nonzero(s > threshold))
        if r > best_r:
            best_r, best_s = r, s
    return best_r, best_s


def cross_factors(w, rank: int):
    """Rank-``rank`` cross approximation of a 2-D kernel (complete pivoting), float64:
    a list of (u, v) with w ~= sum u (x) v. Stops early when the residual is zero."""
    residual = np.array(w, dtype=np.float64)
    terms = []
    for _ in range(rank):
        p, q = np.unravel_index(np.argmax(np.abs(residual)), residual.shape)
        pivot = residual[p, q]
        if pivot == 0:
            break
        u = residual[:, q].copy()
        v = residual[p, :] / pivot
        terms.append((u, v))
        residual -= np.multiply.outer(u, v)
        residual[:, q] = 0.0      # exact by construction: keep rounding noise out
        residual[p, :] = 0.0
    return terms


def outer_factors(core):
    """Rank-1 factors of an N-D kernel through its largest tap: the fiber along the first
    axis as it is, every other fiber divided by the pivot (exact zeros stay zero)."""
    core = np.asarray(core, dtype=np.float64)
    p = np.unravel_index(np.argmax(np.abs(core)), core.shape)
    pivot = core[p]
    factors = []
    for a in range(core.ndim):
        index = list(p)
        index[a] = slice(None)
        fiber = core[tuple(index)].copy()
        factors.append(fiber if a == 0 else fiber / pivot)
    return factors


def _outer(vectors):
    out = np.asarray(vectors[0], dtype=np.float64)
    for v in vectors[1:]:
        out = np.multiply.outer(out, np.asarray(v, dtype=np.float64))
    return out


def certificate(w, terms, compute, wide_input: bool = False) -> float:
    """Largest ratio, over the taps, of the separable plan's worst-case error to the
    'direct' allowance (header, 3.): <= 1 proves the plan obeys gamma_K (|w| (*) |x|).
    ``terms``: list of per-axis factor lists (on the non-trivial axes), any dtype; they
    are rounded to ``compute`` here as the passes will use them."""
    core = np.asarray(w, dtype=np.float64).reshape([k for k in np.shape(w) if k > 1])
    u = unit_roundoff(compute)
    u64 = unit_roundoff(np.float64)
    rounded = [[np.asarray(f, dtype=np.float64).astype(compute).astype(np.float64) for f in t]
               for t in terms]
    approx = sum(_outer(t) for t in rounded)
    amplitude = sum(_outer([np.abs(f) for f in t]) for t in rounded)
    m = sum(core.shape) + len(terms) - 1 + int(wide_input)
    # float64 evaluation of approx and of the difference: a few u64 of what is summed
    slack = 4 * (core.ndim + len(terms)) * u64 * (amplitude + np.abs(core))
    lhs = np.abs(approx - core) + gamma(m, u) * amplitude + slack
    rhs = gamma(core.size, u) * np.abs(core)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(lhs == 0, 0.0, lhs / rhs)
    return float(np.max(ratio)) if ratio.size else 0.0


# ---------------------------------------------------------------------------------------
# Plans
# ---------------------------------------------------------------------------------------

def block_length(k: int, last: bool) -> int:
    """Outputs per banded block (measured: short blocks along axis 0, 32 along the last)."""
    if last:
        return 32
    return 8 if k <= 15 else 16 if k <= 40 else 32


def _pass_cost(k: int, last: bool, columns: int) -> float:
    a, b = COST_L if last else COST_F
    cost = a + b * k
    if not last and columns < SMALL_COLUMNS:
        cost *= 10
    return cost


@dataclass
class Plan:
    """How one kernel is applied. kind: 'zero' (all taps 0), 'separable' (terms of 1-D
    factors on ``axes``), 'direct' (passes along ``axes[pass_index]`` over views shifted
    along the other non-trivial axis), 'shift' (numpy shift-add over all taps)."""

    kind: str
    axes: tuple[int, ...]                 # non-trivial kernel axes
    rank: int = 0                         # numerical rank (SVD)
    terms: list = field(default_factory=list)   # [[factor per axis in axes] per term]
    pass_index: int = 0                   # direct plan: which of the two axes the passes run on
    ratio: float = math.nan               # certificate of the separable plan (<= 1)
    _toeplitz: dict = field(default_factory=dict, repr=False)

    def toeplitz(self, factor: np.ndarray, block: int, key) -> np.ndarray:
        """(block, block + k - 1) banded matrix of ``factor``, cached in the plan."""
        hit = self._toeplitz.get((key, block))
        if hit is None:
            k = factor.shape[0]
            hit = np.zeros((block, block + k - 1), dtype=factor.dtype)
            for j in range(block):
                hit[j, j:j + k] = factor
            self._toeplitz[(key, block)] = hit
        return hit


def make_plan(w, compute, wide_input: bool = False, columns: int = 1 << 20) -> Plan:
    """Decide how to apply kernel ``w`` (numbered steps of the header). ``columns``: the
    number of image samples after the first non-trivial axis (penalises tiny GEMMs)."""
    compute = np.dtype(compute)
    w64 = np.asarray(w, dtype=np.float64)
    axes = tuple(a for a, k in enumerate(w64.shape) if k > 1)
    core = w64.reshape([w64.shape[a] for a in axes])
    if not np.any(core):
        return Plan("zero", axes)
    if len(axes) <= 1:
        factor = core.reshape(-1).astype(compute)
        return Plan("separable", axes, 1, [[factor]], ratio=0.0)
    rank, _ = numerical_rank(w64, compute)
    ks = [w64.shape[a] for a in axes]
    last = [a == w64.ndim - 1 for a in axes]

    def separable_cost(r):
        return r * sum(_pass_cost(k, is_last, columns) for k, is_last in zip(ks, last)) + \
            (r - 1) * COST_ADD

    direct = None
    if len(axes) == 2 and axes[1] == axes[0] + 1:
        options = []
        for i in (0, 1):   # passes along axes[i], views shifted along the other axis
            other = ks[1 - i]
            options.append((other * _pass_cost(ks[i], last[i], columns) + (other - 1) * COST_ADD, i))
        cost, index = min(options)
        direct = (cost, Plan("direct", axes, rank, pass_index=index))
    best = direct
    if len(axes) == 2 and 1 <= rank <= MAX_RANK:
        if best is None or separable_cost(rank) < best[0]:
            terms = [[u.astype(compute), v.astype(compute)]
                     for u, v in cross_factors(core, rank)]
            ratio = certificate(w64, terms, compute, wide_input)
            if ratio <= 1.0:
                best = (separable_cost(rank), Plan("separable", axes, rank, terms, ratio=ratio))
    elif len(axes) > 2 and rank == 1:
        terms = [[f.astype(compute) for f in outer_factors(core)]]
        ratio = certificate(w64, terms, compute, wide_input)
        if ratio <= 1.0 and (best is None or separable_cost(1) < best[0]):
            best = (separable_cost(1), Plan("separable", axes, 1, terms, ratio=ratio))
    if best is None:
        return Plan("shift", axes, rank)
    return best[1]


def plan_for(w: np.ndarray, compute, wide_input: bool = False, columns: int = 1 << 20) -> Plan:
    """``make_plan`` through the LRU (keyed by the kernel's bytes, not its identity: a
    kernel changed in place is never served a stale plan)."""
    wc = np.ascontiguousarray(w)
    key = (np.dtype(compute).str, wide_input, columns < SMALL_COLUMNS)
    return _cache.get(wc, key, lambda: make_plan(wc, compute, wide_input, columns))


def separable_rank(w, x_dtype=np.float32) -> int | None:
    """The number of separable terms this candidate will use for kernel ``w`` on an image
    of ``x_dtype`` (1 for Gaussian, box, Sobel), or None when it falls back to the direct
    sum: for a default-choice rule, which sees the kernel's values (supports() does not)."""
    w = np.asarray(w)
    if w.dtype.kind not in "iuf":
        return None
    compute = image_compute_dtype(x_dtype, w.dtype)
    x_dtype = np.dtype(x_dtype)
    wide = x_dtype.kind in "iu" and np.iinfo(x_dtype).bits > np.finfo(compute).nmant + 1
    plan = plan_for(w, compute, wide)
    return plan.rank if plan.kind == "separable" else None


def clear_cache() -> None:
    """Forget every plan and the calling thread's scratch buffers."""
    from candidates.runtime import release_scratch

    _cache.clear()
    release_scratch(__name__)


# ---------------------------------------------------------------------------------------
# Passes
# ---------------------------------------------------------------------------------------

PARALLEL_MIN = 1 << 17       # outputs below which a pass runs on the calling thread
CHUNKS_PER_THREAD = 4


def _run(jobs):
    """Run the matmul jobs (callables) on candidates.runtime.threads() threads with BLAS
    itself pinned to one thread: many small banded products parallelise better by blocks
    than inside each BLAS call."""
    from candidates.runtime import run_blas_jobs, threads

    run_blas_jobs(jobs, threads())


def _split(n: int, parts: int):
    parts = max(1, min(parts, n))
    bounds = [n * i // parts for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def _pass(a: np.ndarray, axis: int, matrix: np.ndarray, k: int, n_out: int,
          slot: str | None = None) -> np.ndarray:
    """'valid' 1-D correlation of ``a`` along ``axis`` by banded blocks; ``a`` must hold
    at least ceil(n_out / B) * B + k - 1 samples on that axis (B = matrix rows). Returns
    the blocks' outputs, ceil(n_out / B) * B long on that axis (crop later), in workspace
    ``slot`` (None: a new array).

    ``a`` may be any strided array whose axes after ``axis`` collapse into one run of
    rows (true for C-contiguous arrays and for views cropped on ``axis`` + 1 only)."""
    from candidates.runtime import threads

    block = matrix.shape[0]
    nb = -(-n_out // block)
    s = a.strides
    item = a.itemsize
    parts = CHUNKS_PER_THREAD * threads() if a.size >= PARALLEL_MIN and threads() > 1 else 1
    if axis == a.ndim - 1:
        rows = int(np.prod(a.shape[:-1], dtype=np.int64))
        row_stride = s[-2] if a.ndim > 1 else a.shape[-1] * item
        if a.ndim > 2 and not _collapsible(a.shape[:-1], s[:-1]):
            a = np.ascontiguousarray(a)
            s, row_stride = a.strides, a.strides[-2]
        view = np.lib.stride_tricks.as_strided(
            a, (nb, rows, block + k - 1), (block * item, row_stride, item), writeable=False)
        y = _buffer(slot, a.shape[:-1] + (nb * block,), a.dtype)
        out = y.reshape(rows, nb, block).transpose(1, 0, 2)
        _run([lambda lo=lo, hi=hi: np.matmul(view[:, lo:hi], matrix.T, out=out[:, lo:hi])
              for lo, hi in _split(rows, parts)])
        return y
    pre = int(np.prod(a.shape[:axis], dtype=np.int64))
    cols = int(np.prod(a.shape[axis + 1:], dtype=np.int64))
    if not (_collapsible(a.shape[axis + 1:], s[axis + 1:]) and _collapsible(a.shape[:axis], s[:axis])):
        a = np.ascontiguousarray(a)
        s = a.strides
    pre_stride = s[axis - 1] if axis > 0 else 0
    col_stride = s[-1] if axis + 1 < a.ndim else item
    step = s[axis]
    view = np.lib.stride_tricks.as_strided(
        a, (pre, nb, block + k - 1, cols), (pre_stride, block * step, step, col_stride),
        writeable=False)
    y = _buffer(slot, (pre, nb, block, cols), a.dtype)
    if pre >= parts or pre >= nb:
        jobs = [lambda lo=lo, hi=hi: np.matmul(matrix, view[lo:hi], out=y[lo:hi])
                for lo, hi in _split(pre, parts)]
    else:
        jobs = [lambda lo=lo, hi=hi: np.matmul(matrix, view[:, lo:hi], out=y[:, lo:hi])
                for lo, hi in _split(nb, parts)]
    _run(jobs)
    return y.reshape(a.shape[:axis] + (nb * block,) + a.shape[axis + 1:])


def _collapsible(shape, strides) -> bool:
    """Whether axes of ``shape`` collapse into one axis with a single stride."""
    for i in range(len(shape) - 1):
        if shape[i + 1] != 1 and strides[i] != strides[i + 1] * shape[i + 1]:
            return False
    return True


def _crop(a, axis, n):
    index = [slice(None)] * a.ndim
    index[axis] = slice(0, n)
    return a[tuple(index)]


def _separable(xp, plan, ks, n_out):
    """sum over terms of passes along each non-trivial axis (last axis first). Scratch
    results go to the thread's workspaces; only the returned array is new."""
    order = sorted(range(len(plan.axes)), key=lambda i: -plan.axes[i])
    y = None
    for t, factors in enumerate(plan.terms):
        a = xp
        for step, i in enumerate(order):
            axis, k = plan.axes[i], ks[i]
            block = block_length(k, axis == xp.ndim - 1)
            matrix = plan.toeplitz(factors[i], block, (t, i))
            if step < len(order) - 1:
                slot = f"pass{step % 2}"
            else:
                slot = None if y is None else "term"
            a = _crop(_pass(a, axis, matrix, k, n_out[axis], slot), axis, n_out[axis])
        if y is None:
            y = a           # a view of this call's own new array: safe to add into
        else:
            y += a
    return y


def _direct(xp, w, plan, ks, n_out, compute):
    """Direct sum: passes along one non-trivial axis of views shifted along the other."""
    axis = plan.axes[plan.pass_index]
    other = plan.axes[1 - plan.pass_index]
    k = ks[plan.pass_index]
    block = block_length(k, axis == xp.ndim - 1)
    core = np.asarray(w, dtype=compute).reshape(ks)
    y = None
    for j in range(ks[1 - plan.pass_index]):
        factor = core[:, j] if plan.pass_index == 0 else core[j, :]
        if not np.any(factor):
            continue
        view = _crop(xp[(slice(None),) * other + (slice(j, None),)], other, n_out[other])
        matrix = plan.toeplitz(np.ascontiguousarray(factor), block, ("direct", j))
        a = _crop(_pass(view, axis, matrix, k, n_out[axis], None if y is None else "term"),
                  axis, n_out[axis])
        if y is None:
            y = a           # a view of this call's own new array: safe to add into
        else:
            y += a
    if y is None:
        y = np.zeros(n_out, dtype=compute)
    return y


def _shift_add(xp, w, n_out, compute):
    """y = sum over every tap (zeros included: 0 * inf is NaN, as in the oracle)."""
    w = np.asarray(w, dtype=compute)
    y = np.zeros(n_out, dtype=compute)
    tmp = np.empty(n_out, dtype=compute)
    for j in np.ndindex(*w.shape):
        np.multiply(xp[tuple(slice(a, a + n) for a, n in zip(j, n_out))], w[j], out=tmp)
        y += tmp
    return y


def _buffer(slot, shape, dtype) -> np.ndarray:
    """A new array when ``slot`` is None, else this thread's scratch buffer ``slot`` of
    this module (candidates.runtime.scratch). Reuse matters: three fresh image-sized
    arrays per call were returned to the OS and page-faulted back in on every call
    (~3 ms of 8 on a 1024^2 float32 Gaussian here). clear_cache() releases them."""
    from candidates.runtime import scratch

    return np.empty(shape, dtype) if slot is None else scratch(__name__, slot, shape, dtype)


def _padded(x, pads, border, cval, compute):
    """x extended by ``pads`` under the border rule, in ``compute``, in the thread's 'pad'
    workspace (candidates.runtime.pad_into)."""
    from candidates.runtime import pad_into

    shape = tuple(n + lo + hi for n, (lo, hi) in zip(x.shape, pads))
    return pad_into(_buffer("pad", shape, compute), x, pads, border, cval)


def correlate(x, w, *, border="constant", cval=0.0, padding="same", origin=0, out_dtype=None):
    x, w = np.asarray(x), np.asarray(w)
    out = result_dtype(x.dtype, w.dtype)
    compute = image_compute_dtype(x.dtype, w.dtype)
    pads = image_padding(w.shape, padding, origin)
    n_out = image_output_shape(x.shape, pads, w.shape)
    wide = x.dtype.kind in "iu" and np.iinfo(x.dtype).bits > np.finfo(compute).nmant + 1
    axes = [a for a, k in enumerate(w.shape) if k > 1]
    columns = int(np.prod([n + lo + hi for n, (lo, hi) in zip(x.shape, pads)][axes[0] + 1:],
                          dtype=np.int64)) if axes else 1
    plan = plan_for(w, compute, wide, columns)
    ks = tuple(w.shape[a] for a in plan.axes)
    # extra high-side samples so that every banded pass runs whole blocks (header)
    extra = [0] * x.ndim
    if plan.kind in ("separable", "direct"):
        pass_axes = plan.axes if plan.kind == "separable" else (plan.axes[plan.pass_index],)
        for axis in pass_axes:
            k = w.shape[axis]
            block = block_length(k, axis == x.ndim - 1)
            extra[axis] = -(-n_out[axis] // block) * block - n_out[axis]
    xp = _padded(x, [(lo, hi + e) for (lo, hi), e in zip(pads, extra)], border, cval, compute)
    if plan.kind != "shift" and compute.kind == "f" and x.dtype.kind == "f" and \
            not np.isfinite(np.add.reduce(xp, axis=None)):
        kind = "shift"      # a NaN/Inf (or an overflowing sum): oracle's NaN placement
    else:
        kind = plan.kind
    if kind == "shift":
        y = _shift_add(xp, w, n_out, compute)
    elif kind == "zero":
        y = np.zeros(n_out, dtype=compute)
    elif not plan.axes:    # a single tap
        y = _crop_all(xp, n_out) * compute.type(plan.terms[0][0][0])
    elif kind == "separable":
        y = _separable(xp, plan, ks, n_out)
    else:
        y = _direct(xp, w, plan, ks, n_out, compute)
    y = _crop_all(y, n_out)
    if out_dtype is not None:
        return round_saturate(y, out_dtype)
    return y.astype(out, copy=False)


def _crop_all(a, n_out):
    if a.shape == tuple(n_out):
        return a
    return a[tuple(slice(0, n) for n in n_out)]

# winograd_numpy: Winograd minimal filtering F(2x2, 3x3) for 3x3 stride-1 conv layers
# (Lavin & Gray 2016) in numpy + BLAS: 16 GEMMs (O x C/groups) @ (C/groups x tiles)
# instead of im2col's (O x 9C) @ (9C x outputs) -- 2.25x fewer multiplications.
#
#   every 2x2 block of outputs reads a 4x4 input tile d; tiles overlap by 2 (stride 2):
#
#       xp (x padded by the border once)      U = G g G^T   (4x4 per (o, c); cached)
#       +--+--+--+--+--+--+                   V = B^T d B   (4x4 per (c, tile))
#       |d  d  d  d|  |  |                    M[kl] = U[kl] (O x C) @ V[kl] (C x tiles)
#       |d  d  d  d|  |  |   tile (a, b)             16 GEMMs, one per (k, l)
#       |d  d  d  d|  |  |   = rows 2a..2a+3   Y = A^T M A  (2x2 outputs per tile)
#       |d  d  d  d|  |  |     cols 2b..2b+3       + bias; ragged last row/column cropped
#       +--+--+--+--+--+--+
#
#   B^T = [1  0 -1  0]    G = [ 1    0    0 ]    A^T = [1  1  1  0]
#         [0  1  1  0]        [1/2  1/2  1/2]          [0  1 -1 -1]
#         [0 -1  1  0]        [1/2 -1/2  1/2]
#         [0  1  0 -1]        [ 0    0    1 ]
#
# Layout (numpy is fast only over long contiguous runs: a 2-D op over 300-sample rows cost
#   ~4x a 1-D op of the same size here, ~66 ns per row). The padded input is written once,
#   de-interleaved by row and column parity, into Z[pr, pc, n, c, a, b] = xp[n, c, 2a + pr,
#   2b + pc] (th+1 x tw+1 per plane for th x tw tiles). The 16 samples of tile (a, b) then
#   sit at flat offsets 0, 1, tw+1, tw+2 of the four planes, so B^T d B is 4 column-pass
#   and 4 row-pass subtractions/additions of shifted views, 1-D over whole planes laid end
#   to end. The shifts wrap at row and plane ends: tile column b = tw and tile row a = th
#   are garbage -- the column is carried through the GEMMs (1/(tw+1) of their work), the
#   row is skipped by reading V with a row stride; neither is written out. A^T M A is 4 +
#   4 passes into a (row parity, tile row, tile column, column parity) buffer, then one
#   copy per row parity into y (writing y's stride-2 sub-grids directly cost 2-4x more).
#   Chunks: whole images (batched) while their transforms fit CHUNK_BYTES, else blocks of
#   tile rows; with threads() > 1 the chunks go to runtime.run_jobs (the caller works too,
#   so a worker whose core is busy with another process holds nothing up), or, when an
#   image is too small to cut, its input transform by channel ranges and then its GEMMs
#   and output transforms by output-channel ranges. BLAS is pinned to one thread meanwhile
#   (threadpoolctl): numpy's OpenBLAS running 2 threads inside each GEMM stalled 5x on
#   this shared 2-core machine. Scratch buffers are per thread and reused (page faults of
#   fresh multi-MiB arrays cost ~2 ms on V2); clear_cache() frees them.
#   The kernel transform is cached (LRU of 16, <= 256 MiB; candidates.runtime.KernelCache:
#   a CRC-32 of a sample of the taps, then a bitwise comparison with a kept copy, much
#   cheaper than a digest of every byte).
#
# Wins: 3x3 stride-1 layers with many channels, against im2col_numpy; not against torch.
#   GEMMs are ~85% of the time and run at OpenBLAS's speed: numpy's OpenBLAS picks its
#   Haswell (AVX2) kernels on this Zen 5 CPU, ~100 GFLOP/s per core, while torch's oneDNN
#   uses AVX-512 (~190): 2.25x fewer multiplications do not make up for 1.9x slower ones.
#   One thread: 0.67-0.86x im2col_numpy's time, 1.2-2x torch's on the layers suite.
# Does not win: few channels per group (D3, C = 1: 4x im2col's time; depthwise): the
#   transforms, O(C + O) per tile, outweigh the O(C * O / groups) multiply-adds (inner
#   length 1 uses a broadcast product: BLAS ran at ~1 GFLOP/s there); tiny planes (R13,
#   7x7: 4x5 tile columns for 4x4 tiles, skinny GEMMs that re-pack U: 1.46x im2col).
# Applies: conv with a 3x3 kernel on 2 spatial axes, stride 1, dilation 1; any groups
#   (depthwise included), bias, every padding form and every border (numpy.pad's names
#   are ours, any width); float16/32/64 (not bfloat16: numpy has none). supports() refuses
#   the rest with the reason.
# Numerics: NOT the 'direct' bound -- the transforms add and cancel. Model 'winograd' of
#   convbench/tolerance.py (derived there): every output obeys
#       |y - y_ref| <= gamma_{C/groups + 10 (+1 with bias)}(u) * ((|x| (*) W(|w|)) + |bias|)
#   (+ the final rounding of a float16 result), W(|w|) = the tap-wise max over the four
#   tile phases of E_i |w| E_j^T: a 3x3 kernel >= |w| whose taps sum to <= 16 ||w||_1.
#   float32 and float16 inputs run in float32 (float16 rounded once at the end), float64
#   in float64; U = G g G^T is computed in float64 and rounded once. Absolute errors are
#   1-3x those of torch's direct sums.
#   Non-finite values: a NaN or Inf in a tile reaches all four outputs of every tile that
#   reads it (and inf - inf = NaN inside the transforms), unlike the direct sum. When the
#   result holds a non-finite value the layer is recomputed as a direct sum (9 shifted
#   GEMMs, within the same bound), so NaN/Inf land where the oracle puts them.
#   F(4x4, 3x3) (36 GEMMs per 16 outputs, 1.78x fewer multiplications again) is not
#   offered: its errors are an order of magnitude larger, no elementwise bound of the form
#   above exists for it (|A^T| |B^T| reaches outside each output's 3x3 window), and the
#   sound normwise bound (beta = 29.33^2 = 860 against 16) is loose enough to pass wrong
#   kernels.
from __future__ import annotations

import math
import threading

import numpy as np

from candidates.runtime import KernelCache, extend
from refimpl.dtypes import compute_dtype
from refimpl.geometry import conv_output_shape, layer_padding, positive_tuple
from refimpl.pad import canonical_border

LIBRARY = "numpy"
DEVICE = "cpu"
ERROR = "winograd"

# The F(2x2, 3x3) matrices (the transforms below are these, written out as additions).
BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)

DTYPES = ("float16", "float32", "float64")
CHUNK_BYTES = 16 * 2**20       # transforms of one chunk (V, M and temporaries)
JOBS_PER_THREAD = 1            # chunks (or phase parts) per thread: fewer, larger GEMMs won
PARALLEL_MIN_FLOPS = 5e7       # below this a layer runs on the calling thread (D4, 2.4e7
                               # flops: 0.50 ms on 1 thread, 0.62-0.66 ms on 2)
MIN_COLUMNS = 48               # tile columns per chunk worth a GEMM of their own
BLOCK = 1 << 14                # samples per plane and numpy call in the transforms (in L2)
CACHE_ENTRIES = 16
CACHE_BYTES = 256 * 2**20      # kernel transforms kept (16/9 of the weights each)

_cache = KernelCache(CACHE_ENTRIES, CACHE_BYTES, nbytes=lambda u: u.nbytes)


def supports(spec):
    if spec.op != "conv":
        return f"winograd_numpy computes conv only, not {spec.op}"
    if "bfloat16" in spec.dtypes:
        return "numpy has no bfloat16 (conv_torch takes bfloat16 tensors)"
    x_shape, w_shape = spec.shapes[0], spec.shapes[1]
    nsp = len(x_shape) - 2
    if nsp != 2:
        axes = "axis" if nsp == 1 else "axes"
        return f"F(2x2,3x3) tiles 2 spatial axes; this layer has {nsp} spatial {axes}"
    if tuple(w_shape[2:]) != (3, 3):
        return f"F(2x2,3x3) needs a 3x3 kernel, got {w_shape[2]}x{w_shape[3]}"
    kw = spec.kwargs
    if positive_tuple(kw["stride"], 2, "stride") != (1, 1):
        return "Winograd tiles need stride 1 (strided outputs skip the tiles' shared inputs)"
    if positive_tuple(kw["dilation"], 2, "dilation") != (1, 1):
        return "F(2x2,3x3) needs dilation 1"
    for d in spec.dtypes:
        if d not in DTYPES:
            return f"winograd_numpy computes float16/float32/float64, not {d}"
    return None


# ---------------------------------------------------------------------------------------
# Checks (the harness validates specs; direct callers get the same clear errors)
# ---------------------------------------------------------------------------------------

def _check(x, w, bias, stride, dilation, groups):
    for name, a in (("x", x), ("w", w), ("bias", bias)):
        if a is None:
            continue
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{name} must be a numpy array, got {type(a).__name__}")
        if a.dtype.name not in DTYPES:
            raise TypeError(f"{name} has dtype {a.dtype}; winograd_numpy takes "
                            f"{', '.join(DTYPES)}")
        if a.size == 0:
            raise ValueError(f"{name} must not be empty, got shape {a.shape}")
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"x and w must be 4-D (N, C, H, W) and (O, C/groups, 3, 3) for "
                         f"F(2x2,3x3), got x {x.shape} and w {w.shape}")
    if w.shape[2:] != (3, 3):
        raise ValueError(f"w must be a 3x3 kernel for F(2x2,3x3), got {w.shape[2]}x{w.shape[3]}")
    if positive_tuple(stride, 2, "stride") != (1, 1):
        raise ValueError(f"stride must be 1 for Winograd tiles, got {stride!r}")
    if positive_tuple(dilation, 2, "dilation") != (1, 1):
        raise ValueError(f"dilation must be 1 for F(2x2,3x3), got {dilation!r}")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    if x.shape[1] % groups or w.shape[0] % groups:
        raise ValueError(f"groups={groups} must divide the channels C={x.shape[1]} and the "
                         f"outputs O={w.shape[0]}")
    if w.shape[1] * groups != x.shape[1]:
        raise ValueError(f"w.shape[1] * groups must equal the channels C of x: "
                         f"{w.shape[1]} * {groups} != {x.shape[1]}")
    if bias is not None and bias.shape != (w.shape[0],):
        raise ValueError(f"bias must have shape (O,) = ({w.shape[0]},), got {bias.shape}")


# ---------------------------------------------------------------------------------------
# Kernel transform U = G g G^T, cached
# ---------------------------------------------------------------------------------------

def kernel_transform(w: np.ndarray, compute) -> np.ndarray:
    """U (16, O, C/groups) in ``compute``: U[4k + l, o, c] = (G w[o, c] G^T)[k, l],
    computed in float64 and rounded once. Cached in an LRU keyed by the kernel's shape,
    dtypes and a CRC-32 of a sample of its values, and served only after a bitwise
    comparison with the kept copy of the kernel: a kernel changed in place (same array,
    same sample) is never served a stale transform. The comparison reads the kernel at
    memory speed (~0.03 ms for 256x128x3x3 float32); a BLAKE2 digest of its bytes took
    ~1 ms here, as long as the whole convolution's transforms."""
    compute = np.dtype(compute)
    wc = np.ascontiguousarray(w)

    def make():
        u = np.einsum("kr,ocrs,ls->kloc", G, wc.astype(np.float64), G, optimize=True)
        u = np.ascontiguousarray(u.reshape(16, wc.shape[0], wc.shape[1]), dtype=compute)
        u.flags.writeable = False
        return u

    return _cache.get(wc, compute.str, make)


def clear_cache() -> None:
    """Forget the kernel transforms and the calling thread's scratch buffers."""
    from candidates.runtime import release_scratch

    _cache.clear()
    release_scratch(__name__)


def cache_info() -> dict:
    return _cache.info()


def _buffer(slot, shape, dtype) -> np.ndarray:
    """The calling thread's scratch array ``slot`` (uninitialised), reused between calls:
    fresh multi-MiB arrays are page-faulted in again on every call."""
    from candidates.runtime import scratch

    return scratch(__name__, slot, shape, dtype)


# ---------------------------------------------------------------------------------------
# The padded, de-interleaved input
# ---------------------------------------------------------------------------------------

def _planes(x, pads, border, cval, th, tw, compute):
    """Z (2, 2, N, C, th+1, tw+1): Z[pr, pc, n, c, a, b] = xp[n, c, 2a + pr, 2b + pc], xp =
    x extended by the border (numpy.pad's meaning, any width). Positions past the padded
    input (odd output sizes) hold cval or 0: they feed only outputs that are cropped."""
    (top, bottom), (left, right) = pads
    n, c, h, w = x.shape
    z = _buffer("planes", (2, 2, n, c, th + 1, tw + 1), compute)
    if border == "constant":
        src, row0, col0 = x, top, left
        fill = cval
    else:
        src = extend(x.astype(compute, copy=False), ((0, 0), (0, 0), (top, bottom), (left, right)),
                     border)
        row0 = col0 = 0
        fill = 0.0         # past the padded input
    rows, cols = src.shape[2], src.shape[3]
    for pr in (0, 1):      # everything outside the copied block: the fill value
        a0, a1 = -(-(row0 - pr) // 2), -(-(row0 + rows - pr) // 2)
        z[pr, :, :, :, :a0] = fill
        z[pr, :, :, :, a1:] = fill
        for pc in (0, 1):
            b0, b1 = -(-(col0 - pc) // 2), -(-(col0 + cols - pc) // 2)
            z[pr, pc, :, :, a0:a1, :b0] = fill
            z[pr, pc, :, :, a0:a1, b1:] = fill
            if a1 > a0 and b1 > b0:      # plane rows/columns a0:a1, b0:b1 lie inside src
                np.copyto(z[pr, pc, :, :, a0:a1, b0:b1],
                          src[:, :, 2 * a0 + pr - row0::2, 2 * b0 + pc - col0::2],
                          casting="unsafe")
    return z


# ---------------------------------------------------------------------------------------
# Transforms
# ---------------------------------------------------------------------------------------

def _input_transform(even, odd, v, s, compute):
    """V = B^T d B for the tiles of ``even``/``odd`` (2 row parities, rows, span): the
    column-parity-0/1 planes, rows of ``span`` samples (one channel's tile rows a0..a1 of
    s samples each; or whole planes laid end to end, rows = 1: then numpy runs long
    loops). ``v`` (4, 4, rows, vspan): vspan = span - s (tile rows a0..a1-1), or span
    (whole planes; the last tile row of every plane is garbage, zero at the very end).
    Done in blocks of about BLOCK samples per plane, so that the intermediate column
    pass stays in cache."""
    rows, span = even.shape[1], even.shape[2]
    if rows > 1:
        step = max(1, BLOCK // span)
        for r0 in range(0, rows, step):
            r1 = min(rows, r0 + step)
            _input_block(even[:, r0:r1], odd[:, r0:r1], v[:, :, r0:r1], s, compute)
        return
    step = max(BLOCK, 2 * s)
    for q0 in range(0, span, step):
        q1 = min(span, q0 + step)
        hi = min(span, q1 + s + 1)              # samples read: the row pass looks s ahead
        _input_block(even[..., q0:hi], odd[..., q0:hi], v[..., q0:q1], s, compute)


def _input_block(even, odd, v, s, compute):
    span = even.shape[-1]
    # column pass: g[pr, l] = (d B)[., l]; tile columns d0..d3 = even, odd, even+1, odd+1
    g = _buffer("g", (2, 4) + even.shape[1:], compute)
    e0, e1, o0, o1 = even[..., :-1], even[..., 1:], odd[..., :-1], odd[..., 1:]
    np.subtract(e0, e1, out=g[:, 0, :, :-1])
    np.add(o0, e1, out=g[:, 1, :, :-1])
    np.subtract(e1, o0, out=g[:, 2, :, :-1])
    np.subtract(o0, o1, out=g[:, 3, :, :-1])
    g[..., -1] = 0                 # last sample: only the garbage column reads it
    # row pass: V[k, l] = (B^T d B)[k, l]; tile rows d0..d3 = g0, g1, g0 + s, g1 + s
    n = min(v.shape[-1], span - s)
    if n > 0:
        d0, d1, d2, d3 = g[0, ..., :n], g[1, ..., :n], g[0, ..., s:s + n], g[1, ..., s:s + n]
        np.subtract(d0, d2, out=v[0, ..., :n])
        np.add(d1, d2, out=v[1, ..., :n])
        np.subtract(d2, d1, out=v[2, ..., :n])
        np.subtract(d1, d3, out=v[3, ..., :n])
    if v.shape[-1] > max(n, 0):
        v[..., max(n, 0):] = 0


def _multiply_output(v, u, bias, y, block, hrows, s, groups, compute):
    """M = U (*) V for output channels o0:o1 (16 GEMMs per group), bias, A^T M A, written
    into y. ``v`` (16, nb, C, hrows * s) holds the chunk's input transforms; ``block`` =
    (n0, n1, a0, a1, g0, g1, o0, o1): images, tile rows, groups, output channels."""
    n0, n1, a0, a1, g0, g1, o0, o1 = block
    nb, ob, cols = n1 - n0, o1 - o0, hrows * s
    cin, out_ch = v.shape[2], y.shape[1]
    cg, og = cin // groups, out_ch // groups
    m = _buffer("m", (4, 4, nb, ob, cols), compute)
    if groups == 1:
        ug, vg, mg = u[:, None, o0:o1], v, _view(m, (16, nb, ob, cols))
    else:
        ug = u.reshape(16, 1, groups, og, cg)[:, :, g0:g1]
        vg = v.reshape(16, nb, groups, cg, cols)[:, :, g0:g1]
        mg = _view(m, (16, nb, g1 - g0, og, cols))
    if cg == 1:          # inner length 1: a broadcast product (BLAS runs at ~1 GFLOP/s)
        np.multiply(ug, vg, out=mg)
    else:
        np.matmul(ug, vg, out=mg)
    if bias is not None:   # A^T e_1 = (1, 1): bias added to M[1, 1] reaches all 4 outputs
        np.add(m[1, 1], bias[o0:o1].reshape(ob, 1), out=m[1, 1])
    step = max(1, BLOCK // cols)
    for n in range(nb):
        for r0 in range(0, ob, step):
            r1 = min(ob, r0 + step)
            _output_block(m[:, :, n, r0:r1], y[n0 + n, o0 + r0:o0 + r1], a0, a1, hrows, s,
                          compute)


def _output_block(m, y, a0, a1, hrows, s, compute):
    """y[o, 2a + i, 2b + j] for tile rows a0:a1 from m (4, 4, rows, hrows * s) = M: first
    z[i, l] = (A^T M)[i, l], then y[i, j] = (z A)[i, j] written into yp[i, ., a, b, j]
    (rows of 2(tw+1): one long strided loop), then copied row by row into y (numpy loops
    over the tw-long rows of y's sub-grids cost 2-4x more)."""
    rows, cols = m.shape[2], m.shape[3]
    z = _buffer("z", (2, 4, rows, cols), compute)
    np.add(m[0], m[1], out=z[0])
    np.add(z[0], m[2], out=z[0])
    np.subtract(m[1], m[2], out=z[1])
    np.subtract(z[1], m[3], out=z[1])
    t = _buffer("t", (2, rows, cols), compute)
    yp = _buffer("yp", (2, rows, hrows, s, 2), compute)
    pairs = _view(yp, (2, rows * cols, 2))
    np.add(z[:, 0], z[:, 1], out=t)                  # y[., 0] = z0 + z1 + z2
    np.add(t.reshape(2, -1), z[:, 2].reshape(2, -1), out=pairs[..., 0])
    np.subtract(z[:, 1], z[:, 2], out=t)             # y[., 1] = z1 - z2 - z3
    np.subtract(t.reshape(2, -1), z[:, 3].reshape(2, -1), out=pairs[..., 1])
    p_out, q_out = y.shape[1], y.shape[2]
    grid = yp.reshape(2, rows, hrows, 2 * s)
    for i in (0, 1):
        ri = min(a1, (p_out - i + 1) // 2) - a0      # output rows 2a + i kept here
        if ri > 0:
            np.copyto(y[:, 2 * a0 + i:2 * (a0 + ri) - 1 + i:2], grid[i, :, :ri, :q_out])


# ---------------------------------------------------------------------------------------
# Chunks and jobs
# ---------------------------------------------------------------------------------------

class _Layer:
    """What every job of one call shares."""

    def __init__(self, z, u, bias, y, groups, th, tw, compute):
        self.zr = _view(z, (2, 2, -1))              # flat planes per (row, column) parity
        self.u, self.bias, self.y, self.groups = u, bias, y, groups
        self.th, self.s, self.compute = th, tw + 1, compute
        self.batch, self.cin = z.shape[2], z.shape[3]
        self.plane = (th + 1) * (tw + 1)

    def chunk_shape(self, chunk):
        """(hrows, whole): tile rows per plane in V (whole images keep the garbage row,
        which the GEMMs skip: they read V's planes with a row stride)."""
        n0, n1, a0, a1 = chunk
        whole = a0 == 0 and a1 == self.th
        return (self.th + 1 if whole else a1 - a0), whole

    def transform(self, chunk, v, c0, c1):
        """V of input channels c0:c1 (of every image of the chunk) into v (16, nb, C, .)."""
        n0, n1, a0, a1 = chunk
        hrows, whole = self.chunk_shape(chunk)
        s, plane, cin = self.s, self.plane, self.cin
        vv = _view(v, (4, 4, (n1 - n0) * cin, hrows * s))
        if whole:   # channel planes end to end: one long row
            if c0 == 0 and c1 == cin:
                lo, hi = n0 * cin * plane, n1 * cin * plane
                out = _view(vv, (4, 4, 1, -1))
            else:   # one image (callers split channels only then)
                lo, hi = (n0 * cin + c0) * plane, (n0 * cin + c1) * plane
                out = _view(vv[:, :, c0:c1], (4, 4, 1, -1))
            even = self.zr[:, 0, None, lo:hi]
            odd = self.zr[:, 1, None, lo:hi]
        else:       # one image, tile rows a0..a1 (row a1 read by the row pass)
            planes = _view(self.zr, (2, 2, self.batch * cin, plane))
            rows = slice(n0 * cin + c0, n0 * cin + c1)
            even = planes[:, 0, rows, a0 * s:(a1 + 1) * s]
            odd = planes[:, 1, rows, a0 * s:(a1 + 1) * s]
            out = vv[:, :, c0:c1]
        _input_transform(even, odd, out, s, self.compute)

    def multiply(self, chunk, v, g0, g1, o0, o1):
        n0, n1, a0, a1 = chunk
        _multiply_output(v[..., :(a1 - a0) * self.s], self.u, self.bias, self.y,
                         tuple(chunk) + (g0, g1, o0, o1), a1 - a0, self.s, self.groups,
                         self.compute)

    def whole(self, chunk):
        """The chunk start to end on the calling thread (its own buffers)."""
        n0, n1, a0, a1 = chunk
        hrows, _ = self.chunk_shape(chunk)
        v = _buffer("v", (16, n1 - n0, self.cin, hrows * self.s), self.compute)
        self.transform(chunk, v, 0, self.cin)
        self.multiply(chunk, v, 0, self.groups, 0, self.y.shape[1])


def _chunks(batch, th, s, per_column, want):
    """(n0, n1, a0, a1) chunks: whole images when they fit in CHUNK_BYTES of transforms,
    else balanced blocks of tile rows; cut into ``want`` chunks or more when each still
    has MIN_COLUMNS tile columns for its GEMMs (fewer: the caller splits the chunk's
    GEMMs by output channels instead)."""
    budget = max(s, CHUNK_BYTES // per_column)
    image = (th + 1) * s
    if budget >= image:
        images = max(1, min(budget // image, batch // want))
        if batch >= want:
            return [(n0, min(batch, n0 + images), 0, th) for n0 in range(0, batch, images)]
        needed = 1
    else:
        needed = -(-th // max(1, budget // s))
    parts = max(needed, min(-(-want // batch), th, max(1, th * s // MIN_COLUMNS)))
    if parts == 1:
        return [(n, n + 1, 0, th) for n in range(batch)]
    bounds = [th * i // parts for i in range(parts + 1)]
    return [(n, n + 1, lo, hi) for n in range(batch) for lo, hi in zip(bounds[:-1], bounds[1:])]


def _split(n, parts, unit=1):
    """``parts`` balanced ranges of range(n) (multiples of ``unit`` long but the last)."""
    parts = max(1, min(parts, -(-n // unit)))
    bounds = sorted({min(n, -(-n * i // parts) // unit * unit) for i in range(parts)} | {n})
    return list(zip(bounds[:-1], bounds[1:]))


def _view(a, shape):
    """``a`` reshaped without a copy (numpy's reshape copies silently when it must: an
    output written into such a copy would be lost)."""
    b = a.view()
    b.shape = shape
    return b


def _quiet(fn, *args):
    """fn(*args) without numpy's warnings for NaN/Inf (a worker thread does not inherit
    the caller's np.errstate; non-finite results are handled after the jobs)."""
    with np.errstate(invalid="ignore", over="ignore"):
        fn(*args)


def _run(jobs, workers):
    # BLAS pinned to one thread: its own 2-thread GEMMs were ~5x slower on this machine
    from candidates.runtime import run_blas_jobs

    run_blas_jobs(jobs, workers)


def _compute(layer, chunks, workers, want):
    """Run the chunks: one job per chunk when there are ``want`` of them, else per chunk
    the input transforms by channel ranges, then the GEMMs and output transforms by
    output-channel ranges (jobs of the second kind wait for the first: run_jobs hands
    jobs out in order, so they only wait for transforms already being computed)."""
    if workers <= 1:
        _run([lambda c=c: _quiet(layer.whole, c) for c in chunks], 1)
        return
    if len(chunks) >= want:
        _run([lambda c=c: _quiet(layer.whole, c) for c in chunks], workers)
        return
    out_ch, groups = layer.y.shape[1], layer.groups
    og = out_ch // groups
    for chunk in chunks:
        n0, n1, a0, a1 = chunk
        hrows, whole = layer.chunk_shape(chunk)
        v = _buffer("shared-v", (16, n1 - n0, layer.cin, hrows * layer.s), layer.compute)
        if whole and n1 - n0 > 1:
            ranges = [(0, layer.cin)]        # several images: one flat range spans them
        else:
            ranges = _split(layer.cin, workers)
        if groups == 1:
            blocks = [(0, 1, lo, hi) for lo, hi in _split(out_ch, want, 16)]
        else:
            blocks = [(lo, hi, lo * og, hi * og) for lo, hi in _split(groups, want)]
        pending = [len(ranges)]
        lock, ready = threading.Lock(), threading.Event()

        def first(r, chunk=chunk, v=v, pending=pending, lock=lock, ready=ready):
            try:
                _quiet(layer.transform, chunk, v, *r)
            finally:
                with lock:
                    pending[0] -= 1
                    if pending[0] == 0:
                        ready.set()

        def second(b, chunk=chunk, v=v, ready=ready):
            ready.wait()
            _quiet(layer.multiply, chunk, v, *b)

        _run([lambda r=r: first(r) for r in ranges] + [lambda b=b: second(b) for b in blocks],
             workers)


def _direct(x, w, bias, pads, border, cval, groups, out_shape, compute):
    """The direct sum, as 9 shifted GEMMs per group (used when the Winograd result holds
    a non-finite value, so that NaN/Inf land where the oracle puts them)."""
    (top, bottom), (left, right) = pads
    width = ((0, 0), (0, 0), (top, bottom), (left, right))
    xp = extend(x.astype(compute, copy=False), width, border, cval)
    n, c = x.shape[:2]
    o = w.shape[0]
    p, q = out_shape
    cg, og = c // groups, o // groups
    wc = w.astype(compute)
    y = np.zeros((n, groups, og, p * q), dtype=compute)
    for r in range(3):
        for s in range(3):
            cols = np.ascontiguousarray(xp[:, :, r:r + p, s:s + q]).reshape(n, groups, cg, p * q)
            y += np.matmul(wc[:, :, r, s].reshape(1, groups, og, cg), cols)
    y = y.reshape(n, o, p, q)
    if bias is not None:
        y += bias.astype(compute).reshape(1, o, 1, 1)
    return y


# ---------------------------------------------------------------------------------------
# The op
# ---------------------------------------------------------------------------------------

def conv(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1, border="constant",
         cval=0.0):
    from candidates.runtime import threads

    _check(x, w, bias, stride, dilation, groups)
    border = canonical_border(border)
    out_dtype = np.result_type(*[a.dtype for a in (x, w, bias) if a is not None])
    compute = compute_dtype(out_dtype)
    pads = layer_padding(x.shape[2:], (3, 3), padding, 1, 1)
    p_out, q_out = conv_output_shape(x.shape[2:], (3, 3), pads, 1, 1)
    batch, cin = x.shape[:2]
    out_ch = w.shape[0]
    th, tw = -(-p_out // 2), -(-q_out // 2)
    cval = float(cval) if border == "constant" else 0.0

    u = kernel_transform(w, compute)
    b = None if bias is None else bias.astype(compute)
    z = _planes(x, pads, border, cval, th, tw, compute)
    y = np.empty((batch, out_ch, p_out, q_out), dtype=compute)
    layer = _Layer(z, u, b, y, groups, th, tw, compute)
    per_column = (24 * cin + 30 * out_ch) * compute.itemsize
    flops = 32.0 * batch * th * (tw + 1) * out_ch * (cin // groups)
    workers = max(1, threads()) if flops >= PARALLEL_MIN_FLOPS else 1
    want = JOBS_PER_THREAD * workers if workers > 1 else 1
    chunks = _chunks(batch, th, tw + 1, per_column, want)
    _compute(layer, chunks, workers, want)
    with np.errstate(invalid="ignore", over="ignore"):
        finite = math.isfinite(float(np.sum(y)))
    if not finite:
        # a NaN/Inf in a tile reaches all the tile's outputs (and inf - inf = NaN): the
        # direct sum puts them where the oracle does (an overflowing sum lands here too)
        with np.errstate(invalid="ignore", over="ignore"):
            y = _direct(x, w, bias, pads, border, cval, groups, (p_out, q_out), compute)
    return y.astype(out_dtype, copy=False)

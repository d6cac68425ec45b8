"""Dask arrays: correlate, convolve and gaussian chunk by chunk, returning lazy dask arrays.

    import dask.array as da, convbench
    x = da.from_zarr("scene.zarr")                       # larger than memory is fine
    y = convbench.correlate(x, w, border="reflect")      # lazy, the same chunks as x
    y.to_zarr("filtered.zarr")                           # computed chunk by chunk

One task per output chunk, on any scheduler (threads, processes, dask.distributed):

1. Its window: the output chunk's range widened by the op's halo per axis, the per-side
   padding ``(lo, hi)`` that turns the op into a 'valid' correlation. It comes from the op's
   record (refimpl.geometry through ``pads``: an even kernel or an origin gives lo != hi;
   'valid' none, 'full' k - 1 per side; gaussian its radius ``int(truncate * sigma + 0.5)``).
2. Window positions outside the array read the sample the border rule names
   (refimpl.pad.source_index; constant: ``cval``). The global border is applied once, at
   the array's edge, never at a chunk's edge (scipy run per chunk with mode='wrap' wrapped
   each chunk: dask-image#242), and a halo wider than the array repeats the rule as
   numpy.pad does. No padded copy of the array is made: each window is gathered directly.
3. The window takes only the slices of the source chunks it needs (small ``getitem`` tasks
   where the source chunk lives), from as many neighbours as it spans: chunks smaller than
   the halo, down to one sample, need no rechunking (dask's map_overlap refuses them:
   dask#6688, dask#11580).
4. The op runs in memory on the window through its public function (convbench.api):
   correlate and convolve with ``padding='valid'``; gaussian with the array's border, its
   result cropped by the radius (what the crop keeps reads the window only). So each
   chunk gets the default choice for its own shape and values (or ``algorithm=``), with
   ``out_dtype`` (integers round and saturate) and ``accuracy`` as given.

Output chunks: 'same' (and gaussian) keep the input's. 'valid' and 'full' keep the
input's chunk boundaries below the output's length: 'valid' drops the chunks past it
(the last one shorter), 'full' grows the last chunk by ``k - 1``. The result's dtype is
the in-memory call's.

A constant border whose ``cval`` the image's dtype cannot hold (a uint8 image with
cval=-1 or 0.5) builds its windows in a dtype that holds it (int16; the result's float
dtype for a fraction) and asks each chunk for the in-memory result dtype.

Algorithms whose support is wider than the kernel (the recursive Gaussian, iir_numba)
see the window's own border extension beyond the halo; its error against the oracle is
still its stated bound, which holds for any extension of the window.

Nothing a task carries is process-local: it names the op and its normalised keywords,
and each worker process builds its own plans, kernel caches, thread pools and numba
functions on first use.
"""
from __future__ import annotations

import functools
import itertools
import math
import operator
from dataclasses import dataclass

import numpy as np

from refimpl.pad import source_index

OPS = ("correlate", "convolve", "gaussian")


def apply(op: str, arrays: tuple, names: tuple, params: tuple, algorithm, accuracy):
    """The lazy result of ``op`` on dask arrays (plans._route sends every public-function
    call holding a dask array here). ``params``: the op's keyword values in its record's
    order."""
    from convbench.ops import get_op

    kwargs = dict(zip((k for k, _ in get_op(op).defaults), params))
    present = tuple(a for a in arrays if a is not None)
    return make(op, present, kwargs, algorithm, accuracy)(*present)


def make(op: str, arrays, kwargs: dict, algorithm=None, accuracy: str = "elementwise"):
    """A plan of ``op`` for a dask image (and a numpy or dask kernel); every argument is
    validated here, before any chunk is read."""
    if op not in OPS:
        raise ValueError(f"{op}() does not take dask arrays; the ops that do: {', '.join(OPS)}")
    return DaskPlan(op, tuple(arrays), dict(kwargs), algorithm, accuracy)


@dataclass(frozen=True)
class AxisWindows:
    """One axis of the chunk layout: the output chunks, and per output chunk the source
    slices its window gathers and the runs that copy them into the window."""

    chunks: tuple[int, ...]       # output chunk lengths
    pieces: tuple                 # per output chunk: ((source chunk, start, stop), ...)
    runs: tuple                   # per output chunk, per piece: ((window slice, piece
                                  # slice), ...), a piece slice stepping +1 or -1
    length: tuple[int, ...]       # per output chunk: the window's length
    filled: tuple[bool, ...]      # per output chunk: some window positions read cval


def axis_windows(n: int, chunks, lo: int, hi: int, k: int, border: str) -> AxisWindows:
    """The windows of one axis of length ``n`` with source ``chunks``, halo ``(lo, hi)``
    and kernel extent ``k``: output chunk ``[a, b)`` reads positions ``[a - lo, b + k - 1
    - lo)`` of the array, each mapped by ``border`` (refimpl.pad.source_index).

    >>> w = axis_windows(5, (2, 2, 1), 1, 1, 3, "wrap")     # 'same', chunks of 2
    >>> w.chunks, w.pieces[0]                               # window x4 x0 x1 x2
    ((2, 2, 1), ((0, 0, 2), (1, 0, 1), (2, 0, 1)))
    >>> w.runs[0]                                           # x0 x1 -> window[1:3], ...
    (((slice(1, 3, None), slice(0, 2, 1)),), ((slice(3, 4, None), slice(0, 1, 1)),), ((slice(0, 1, None), slice(0, 1, 1)),))
    >>> axis_windows(4, (4,), 2, 0, 3, "symmetric").runs[0]  # x1 x0 | x0 ..: one reversed run
    (((slice(0, 2, None), slice(1, None, -1)), (slice(2, 6, None), slice(0, 4, 1))),)
    >>> axis_windows(5, (2, 2, 1), 0, 0, 3, "wrap").chunks  # 'valid': 3 outputs
    (2, 1)
    """
    m = n + lo + hi - k + 1
    bounds = [0, *itertools.accumulate(chunks)]
    cuts = [b for b in bounds[:-1] if b < m] + [m]
    pieces, runs, length, filled = [], [], [], []
    for a, b in zip(cuts[:-1], cuts[1:]):
        sources = [source_index(t, n, border) for t in range(a - lo, b + k - 1 - lo)]
        p, r = _gather(sources, bounds)
        pieces.append(p)
        runs.append(r)
        length.append(len(sources))
        filled.append(None in sources)
    return AxisWindows(tuple(b - a for a, b in zip(cuts[:-1], cuts[1:])), tuple(pieces),
                       tuple(runs), tuple(length), tuple(filled))


def _gather(sources, bounds):
    """The source slices holding ``sources`` (array indices, None for cval), one per
    source chunk touched, and per slice the runs of window positions it fills."""
    needed = sorted({s for s in sources if s is not None})
    chunk_of = dict(zip(needed, (np.searchsorted(bounds, needed, side="right") - 1).tolist()))
    first, last = {}, {}
    for s in needed:
        first.setdefault(chunk_of[s], s)
        last[chunk_of[s]] = s + 1
    order = sorted(first)
    pieces = tuple((c, first[c] - bounds[c], last[c] - bounds[c]) for c in order)
    runs = {c: [] for c in order}
    for t, s in enumerate(sources):
        if s is None:
            continue
        c = chunk_of[s]
        local = s - first[c]
        mine = runs[c]
        if mine:
            t0, l0, step, count = mine[-1]
            if t == t0 + count and local == l0 + step * count and step in (1, -1):
                mine[-1] = (t0, l0, step, count + 1)
                continue
            if count == 1 and t == t0 + 1 and abs(local - l0) == 1:
                mine[-1] = (t0, l0, local - l0, 2)
                continue
        mine.append((t, local, 1, 1))
    return pieces, tuple(tuple((slice(t0, t0 + count),
                                slice(l0, l0 + count, 1) if step == 1 else
                                slice(l0, l0 - count if l0 - count >= 0 else None, -1))
                               for t0, l0, step, count in runs[c]) for c in order)


@dataclass(frozen=True)
class ChunkCall:
    """What one output chunk runs: the op's public function on its window (picklable:
    names and normalised keywords only)."""

    op: str
    kwargs: tuple                 # the op's normalised keywords, (name, value) pairs
    algorithm: str | None
    accuracy: str
    window_dtype: str
    cval: float

    def __call__(self, layout, crop, pieces, w=None):
        window = _window(pieces, layout, self.cval, np.dtype(self.window_dtype))
        from convbench import api

        kw = dict(self.kwargs)
        if self.op == "gaussian":
            out = api.gaussian(window, kw.pop("sigma"), **kw, algorithm=self.algorithm,
                               accuracy=self.accuracy)
            return out[crop]      # a view: its base is the window's result, 2r per axis more
        fn = api.correlate if self.op == "correlate" else api.convolve
        kw.update(padding="valid", origin=0)
        return fn(window, w, **kw, algorithm=self.algorithm, accuracy=self.accuracy)


def _window(pieces, layout, cval, dtype) -> np.ndarray:
    """The window from its source slices (nested lists, one level per axis) in one copy.
    ``layout``: per axis (runs per piece, window length, filled with cval)."""
    flat = []
    _flatten(pieces, (), flat)
    runs = [axis[0] for axis in layout]
    shape = tuple(axis[1] for axis in layout)
    if len(flat) == 1:
        index, piece = flat[0]
        whole = all(len(r[0]) == 1 and r[0][0][1] == slice(0, n, 1) and piece.shape[a] == n
                    for a, (r, n) in enumerate(zip(runs, shape)))
        if whole and piece.dtype == dtype:
            return piece                      # the window is one source slice as it is
    filled = any(axis[2] for axis in layout)
    window = np.full(shape, cval, dtype) if filled else np.empty(shape, dtype)
    for index, piece in flat:
        for combo in itertools.product(*(runs[a][i] for a, i in enumerate(index))):
            window[tuple(ws for ws, _ in combo)] = piece[tuple(ps for _, ps in combo)]
    return window


def _flatten(nested, index, out) -> None:
    if isinstance(nested, list):
        for i, item in enumerate(nested):
            _flatten(item, index + (i,), out)
    else:
        out.append((index, nested))


class DaskPlan:
    """A validated call of correlate, convolve or gaussian on a dask image: calling it with
    dask arrays of the example's shapes and dtypes returns the lazy result (any chunks:
    the layout is computed per call); ``explain()`` says what runs per chunk."""

    def __init__(self, op, arrays, kwargs, algorithm, accuracy):
        from convbench import plans, values
        from convbench.ops import get_op
        from convbench.spec import Spec

        record = get_op(op)
        values.check_accuracy(accuracy)
        if len(arrays) != len(record.arrays):
            raise TypeError(f"{op}() takes the arrays {record.arrays}, got {len(arrays)}")
        x = arrays[0]
        if not _is_dask(x):
            raise TypeError(f"x must be a dask array when the kernel is one (got "
                            f"{type(x).__name__}): wrap it with dask.array.from_array(x)")
        if len(arrays) > 1 and not _is_dask(arrays[1]):
            from convbench import arrays as xp

            if xp.library_of(arrays[1]) != "numpy":
                raise TypeError(f"w must be a numpy or dask array with a dask image, got "
                                f"{type(arrays[1]).__name__}")
            arrays = (x, xp.as_numpy_argument(arrays[1], "w"))
        if any(math.isnan(n) for a in arrays for n in a.shape):
            raise ValueError("x has unknown chunk sizes (nan): call x.compute_chunk_sizes() first")
        meta = getattr(x, "_meta", None)
        if meta is not None and type(meta) is not np.ndarray:
            raise TypeError(f"x must be a dask array of numpy chunks, got chunks of type "
                            f"{type(meta).__name__}")
        shapes = [tuple(int(n) for n in a.shape) for a in arrays]
        dtypes = [np.dtype(a.dtype).name for a in arrays]
        self.spec = Spec.make(op, shapes, dtypes, **kwargs)
        self.op, self.algorithm, self.accuracy = op, algorithm, accuracy
        self.kernel = arrays[1] if len(arrays) > 1 else None
        self.chunks = x.chunks
        spec, operation = self.spec, self.spec.operation
        if op == "gaussian":
            radii = operation.radii(spec)
            self.halo = tuple((r, r) for r in radii)
            self.extent = tuple(2 * r + 1 for r in radii)
        else:
            self.halo = tuple(operation.pads(spec))
            self.extent = tuple(spec.shapes[1])
        self.shape = tuple(spec.output_shape())
        self.dtype = operation.result_dtype(spec)
        kw = spec.kwargs
        self.window_dtype = _window_dtype(np.dtype(dtypes[0]), kw["border"], kw["cval"], self.dtype)
        call_kw = {k: v for k, v in kw.items() if k not in ("padding", "origin")}
        if self.window_dtype != np.dtype(dtypes[0]) and call_kw.get("out_dtype") is None:
            call_kw["out_dtype"] = self.dtype.name
        self.call = ChunkCall(op, tuple(sorted(call_kw.items())), algorithm, accuracy,
                              self.window_dtype.name, kw["cval"])
        if algorithm is not None:
            plans._named_candidate(op, algorithm)      # an unknown name fails here, not per chunk
            self._chunk_plan(self._largest_window())   # nor one that cannot run the chunks

    # -- the layout -----------------------------------------------------------------------
    def layout(self, chunks) -> tuple[AxisWindows, ...]:
        border = self.spec.kwargs["border"]
        return tuple(axis_windows(n, c, lo, hi, k, border)
                     for n, c, (lo, hi), k in zip(self.spec.shapes[0], chunks, self.halo,
                                                  self.extent))

    def _largest_window(self, chunks=None):
        axes = self.layout(chunks or self.chunks)
        return tuple(max(axes[a].chunks) + k - 1 for a, k in enumerate(self.extent))

    def _chunk_plan(self, window_shape):
        """The in-memory plan a chunk with this window would make (before its values)."""
        from convbench import plans

        kw = dict(self.call.kwargs)
        if self.op == "gaussian":
            return plans.make("gaussian", (), kw, self.algorithm, self.accuracy,
                              shapes=[window_shape], dtypes=[self.window_dtype.name])
        kw.update(padding="valid", origin=0)
        if self.kernel is not None and not _is_dask(self.kernel):
            example = np.empty(window_shape, self.window_dtype)   # never read: shapes only
            return plans.make(self.op, (example, self.kernel), kw, self.algorithm, self.accuracy)
        return plans.make(self.op, (), kw, self.algorithm, self.accuracy,
                          shapes=[window_shape, self.spec.shapes[1]],
                          dtypes=[self.window_dtype.name, self.spec.dtypes[1]])

    # -- running --------------------------------------------------------------------------
    def __call__(self, *arrays):
        """The lazy result for dask arrays matching the plan's shapes and dtypes."""
        import dask.array as da
        from dask.base import tokenize
        from dask.highlevelgraph import HighLevelGraph

        x, w = self._check(arrays)
        axes = self.layout(x.chunks)
        dependencies = [x]
        w_key = None
        if w is not None:     # one chunk; a numpy kernel's dask name is a hash of its values
            w = w if _is_dask(w) else da.from_array(w, chunks=w.shape)
            if any(n > 1 for n in w.numblocks):
                w = w.rechunk(w.shape)
            dependencies.append(w)
            w_key = (w.name,) + (0,) * w.ndim
        name = f"convbench-{self.op}-" + tokenize(x.name, w_key, self.call, self.halo,
                                                  self.extent)
        piece = name + "-window"
        layer = {}
        for block in itertools.product(*(range(len(a.chunks)) for a in axes)):
            per_axis = [axes[a].pieces[j] for a, j in enumerate(block)]
            chunk_shape = [x.chunks[a] for a in range(x.ndim)]
            pieces = self._pieces(x.name, piece, block, per_axis, chunk_shape, layer)
            layout = tuple((axes[a].runs[j], axes[a].length[j], axes[a].filled[j])
                           for a, j in enumerate(block))
            crop = tuple(slice(lo, lo + axes[a].chunks[j]) for a, (j, (lo, _))
                         in enumerate(zip(block, self.halo)))
            task = functools.partial(self.call, layout, crop)
            layer[(name,) + block] = (task, pieces) if w_key is None else (task, pieces, w_key)
        graph = HighLevelGraph.from_collections(name, layer, dependencies=dependencies)
        return da.Array(graph, name, tuple(a.chunks for a in axes),
                        meta=np.empty((0,) * x.ndim, self.dtype))

    @staticmethod
    def _pieces(source, piece, block, per_axis, chunk_shape, layer):
        """Nested lists (one level per axis) of the keys of the window's source slices: a
        whole source chunk by its own key, a part by a getitem task."""
        def nest(axis, chosen):
            if axis == len(per_axis):
                index = tuple(c for c, _, _ in chosen)
                key = (source,) + index
                if all(start == 0 and stop == chunk_shape[a][c]
                       for a, (c, start, stop) in enumerate(chosen)):
                    return key
                part = (piece,) + block + index
                layer[part] = (operator.getitem, key,
                               tuple(slice(start, stop) for _, start, stop in chosen))
                return part
            return [nest(axis + 1, chosen + (p,)) for p in per_axis[axis]]
        return nest(0, ())

    def _check(self, arrays):
        names = self.spec.operation.arrays
        if len(arrays) != len(names):
            raise TypeError(f"this plan takes the arrays {names}, got {len(arrays)}")
        x = arrays[0]
        w = arrays[1] if len(arrays) > 1 else None
        if not _is_dask(x):
            raise TypeError(f"this plan was made for a dask image, got x of type {type(x).__name__}")
        got = [(tuple(a.shape), np.dtype(a.dtype).name) for a in arrays]
        want = list(zip(self.spec.shapes, self.spec.dtypes))
        if got != want:
            raise ValueError(f"this plan was made for arrays {want}, got {got}: make a new plan "
                             "(or call the op's function)")
        if w is not None and not _is_dask(w):
            from convbench import arrays as xp

            w = xp.as_numpy_argument(w, "w")
        return x, w

    # -- explaining -----------------------------------------------------------------------
    def explain(self) -> str:
        """The layout (halo, border, chunks) and the in-memory plan of the largest window."""
        axes = self.layout(self.chunks)
        tasks = math.prod(len(a.chunks) for a in axes)
        spans = [max(len(p) for p in a.pieces) for a in axes]
        window = self._largest_window()
        kw = self.spec.kwargs
        border = kw["border"] + (f" (cval {kw['cval']:g})" if kw["border"] == "constant" else "")
        lines = [
            f"plan for {self.spec.id} on dask arrays (chunks {_chunks_str(self.chunks)})",
            f"result: lazy dask array {self.shape} {self.dtype}, chunks "
            f"{_chunks_str(tuple(a.chunks for a in axes))}",
            f"halo per axis (low, high): {self.halo}, from the op's geometry",
            f"border {border}: applied once at the array's edge (each window reads the "
            "samples the border rule names), never at chunk edges",
            f"tasks: {tasks} output chunks, each gathering its window from up to "
            f"{math.prod(spans)} source chunk(s) ({' x '.join(map(str, spans))} per axis)",
            f"per chunk: convbench.{self.op} on the window"
            + (", cropped by the radius" if self.op == "gaussian" else " with padding='valid'")
            + (f", algorithm={self.algorithm!r}" if self.algorithm else
               ", the default choice for the window's shape and values")
            + f"; the largest window {window} {self.window_dtype.name}:",
        ]
        lines += ["  " + line for line in self._chunk_plan(window).explain().splitlines()]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<convbench dask plan {self.spec.id}, chunks {_chunks_str(self.chunks)}>"


def _is_dask(a) -> bool:
    return type(a).__module__.split(".")[0] == "dask"


def _window_dtype(x_dtype: np.dtype, border: str, cval: float, result: np.dtype) -> np.dtype:
    """x's dtype, or one that holds cval exactly when a constant border needs it."""
    if border != "constant" or x_dtype.kind in "fc":
        return x_dtype
    if float(cval).is_integer():
        return np.result_type(x_dtype, np.min_scalar_type(int(cval)))
    return result if result.kind == "f" else np.dtype("float64")


def _chunks_str(chunks) -> str:
    """e.g. ``(4 x 1024, 3 of 100-512)``."""
    return "(" + ", ".join(f"{len(c)} x {c[0]}" if len(set(c)) == 1 else
                           f"{len(c)} of {min(c)}-{max(c)}" for c in chunks) + ")"

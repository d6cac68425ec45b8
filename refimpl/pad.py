"""Border extension: the oracle ``pad`` and the one table of border names.

Canonical names are numpy.pad's. Drawn on the signal ``a b c d`` with two samples of
extension on each side::

    constant   k k | a b c d | k k      (k = cval)
    edge       a a | a b c d | d d
    symmetric  b a | a b c d | d c      (edge sample repeated; scipy.ndimage's "reflect")
    reflect    c b | a b c d | c b      (edge sample not repeated; torch's "reflect")
    wrap       c d | a b c d | a b

>>> import numpy as np
>>> x = np.array([1., 2., 3., 4.])
>>> for border in BORDERS:
...     print(f"{border:9}", pad(x, 2, border, cval=9.0))
constant  [9. 9. 1. 2. 3. 4. 9. 9.]
edge      [1. 1. 1. 2. 3. 4. 4. 4.]
symmetric [2. 1. 1. 2. 3. 4. 4. 3.]
reflect   [3. 2. 1. 2. 3. 4. 3. 2.]
wrap      [3. 4. 1. 2. 3. 4. 1. 2.]

Padding wider than the array repeats the rule, as numpy.pad does:

>>> pad(np.array([1., 2., 3.]), (5, 0), "reflect")
array([2., 1., 2., 3., 2., 1., 2., 3.])
"""
from __future__ import annotations

import numpy as np

BORDERS = ("constant", "edge", "symmetric", "reflect", "wrap")

# Other libraries' names for the canonical borders. Only names that mean the same thing in
# every library that uses them are accepted as aliases: "reflect" is always numpy's meaning,
# so scipy.ndimage's "reflect" (our "symmetric") has to be translated with
# ``canonical_border(name, library="scipy.ndimage")``.
ALIASES = {
    "zeros": "constant", "fill": "constant", "grid-constant": "constant",
    "BORDER_CONSTANT": "constant",
    "nearest": "edge", "replicate": "edge", "BORDER_REPLICATE": "edge",
    "grid-mirror": "symmetric", "symm": "symmetric", "BORDER_REFLECT": "symmetric",
    "mirror": "reflect", "BORDER_REFLECT_101": "reflect", "BORDER_REFLECT101": "reflect",
    "BORDER_DEFAULT": "reflect",
    "circular": "wrap", "periodic": "wrap", "grid-wrap": "wrap", "BORDER_WRAP": "wrap",
}

# How each library spells each canonical border; a missing entry means the library
# cannot do that border. Tested against each library in tests/test_pad.py.
LIBRARY_NAMES = {
    "numpy.pad": {b: b for b in BORDERS},
    "scipy.ndimage": {"constant": "constant", "edge": "nearest", "symmetric": "reflect",
                      "reflect": "mirror", "wrap": "wrap"},
    "scipy.signal": {"constant": "fill", "symmetric": "symm", "wrap": "wrap"},
    "torch": {"constant": "constant", "edge": "replicate", "reflect": "reflect",
              "wrap": "circular"},
    "opencv": {"constant": "BORDER_CONSTANT", "edge": "BORDER_REPLICATE",
               "symmetric": "BORDER_REFLECT", "reflect": "BORDER_REFLECT_101",
               "wrap": "BORDER_WRAP"},
    "ImageFiltering.jl": {"constant": "Fill", "edge": ":replicate", "symmetric": ":symmetric",
                          "reflect": ":reflect", "wrap": ":circular"},
    "NNlib.jl": {"constant": "pad_constant", "edge": "pad_repeat", "symmetric": "pad_symmetric",
                 "reflect": "pad_reflect", "wrap": "pad_circular"},
}


def canonical_border(name: str, library: str | None = None) -> str:
    """The canonical border for ``name``, read in ``library``'s meaning when given.

    >>> canonical_border("nearest"), canonical_border("mirror"), canonical_border("circular")
    ('edge', 'reflect', 'wrap')
    >>> canonical_border("reflect"), canonical_border("reflect", library="scipy.ndimage")
    ('reflect', 'symmetric')
    """
    if not isinstance(name, str):
        raise TypeError(f"border must be a string, one of {BORDERS}, got {name!r}")
    if library is not None:
        if library not in LIBRARY_NAMES:
            raise ValueError(f"unknown library {library!r}; accepted: {', '.join(LIBRARY_NAMES)}")
        for canonical, spelled in LIBRARY_NAMES[library].items():
            if spelled == name:
                return canonical
    if name in BORDERS:
        return name
    if name in ALIASES:
        return ALIASES[name]
    raise ValueError(
        f"unknown border {name!r}; accepted: {', '.join(BORDERS)} "
        f"(aliases: {', '.join(sorted(ALIASES))})"
    )


def library_border(border: str, library: str) -> str | None:
    """How ``library`` spells the canonical ``border``; None if it has no such border."""
    return LIBRARY_NAMES[library].get(canonical_border(border))


def source_index(i: int, n: int, border: str) -> int | None:
    """The index of an axis of length ``n`` that padded position ``i`` reads.

    ``i`` may be negative or ``>= n``. Returns None where the border is ``constant``
    (the position reads cval).

    >>> [source_index(i, 4, "symmetric") for i in range(-2, 6)]
    [1, 0, 0, 1, 2, 3, 3, 2]
    >>> [source_index(i, 4, "reflect") for i in range(-2, 6)]
    [2, 1, 0, 1, 2, 3, 2, 1]
    """
    if 0 <= i < n:
        return i
    if border == "constant":
        return None
    if border == "edge":
        return 0 if i < 0 else n - 1
    if border == "wrap":
        return i % n
    if border == "symmetric":  # period 2n:   a b c d d c b a | a b c d ...
        i %= 2 * n
        return i if i < n else 2 * n - 1 - i
    if border == "reflect":  # period 2n-2: a b c d c b | a b c d ...
        if n == 1:
            return 0
        i %= 2 * n - 2
        return i if i < n else 2 * n - 2 - i
    raise ValueError(f"unknown border {border!r}")


def source_indices(positions, n: int, border: str) -> np.ndarray:
    """``source_index`` for an array of positions at once; -1 where the border is constant.
    (Candidates build border maps with it; tests hold it to ``source_index``.)

    >>> source_indices(range(-2, 6), 4, "symmetric").tolist()
    [1, 0, 0, 1, 2, 3, 3, 2]
    >>> source_indices([-1, 0, 3], 3, "constant").tolist()
    [-1, 0, -1]
    """
    i = np.asarray(positions, dtype=np.int64)
    if n < 1:
        raise ValueError(f"cannot index an empty axis (n={n})")
    if border == "constant":
        return np.where((i >= 0) & (i < n), i, -1)
    if border == "edge":
        return np.clip(i, 0, n - 1)
    if border == "wrap":
        return i % n
    if border == "symmetric":  # period 2n
        m = i % (2 * n)
        return np.where(m < n, m, 2 * n - 1 - m)
    if border == "reflect":  # period 2n - 2
        if n == 1:
            return np.zeros_like(i)
        m = i % (2 * n - 2)
        return np.where(m < n, m, 2 * n - 2 - m)
    raise ValueError(f"border must be one of {BORDERS}, got {border!r}")


def normalize_pad_width(pad_width, ndim: int) -> tuple[tuple[int, int], ...]:
    """numpy.pad's broadcasting of ``pad_width``: int, (lo, hi), or one pair per axis."""
    arr = np.asarray(pad_width)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"pad_width must hold integers, got {pad_width!r}")
    try:
        arr = np.broadcast_to(arr, (ndim, 2))
    except ValueError:
        raise ValueError(f"pad_width {pad_width!r} does not fit an array of {ndim} axes") from None
    if (arr < 0).any():
        raise ValueError(f"pad_width must be >= 0, got {pad_width!r}")
    return tuple((int(lo), int(hi)) for lo, hi in arr)


def pad(x, pad_width, border: str = "constant", cval: float = 0.0) -> np.ndarray:
    """Extend ``x`` by ``pad_width`` samples per side using ``border``, in float64 (an
    object array of exact integers keeps its values).

    ``xp[i] = x[source_index(i - lo, n, border)]`` on every axis, or ``cval`` where any
    axis falls in a constant border.

    >>> pad(np.array([[1., 2.], [3., 4.]]), 1, "edge")
    array([[1., 1., 2., 2.],
           [1., 1., 2., 2.],
           [3., 3., 4., 4.],
           [3., 3., 4., 4.]])
    """
    x = np.asarray(x)
    border = canonical_border(border)
    pads = normalize_pad_width(pad_width, x.ndim)
    for axis, (n, (lo, hi)) in enumerate(zip(x.shape, pads)):
        if n == 0 and (lo or hi) and border != "constant":
            raise ValueError(f"cannot extend empty axis {axis} with border {border!r}")
    if x.dtype != object:  # an object array of Python ints (exact sums) stays exact
        x = x.astype(np.complex128 if np.iscomplexobj(x) else np.float64)
    out_shape = tuple(n + lo + hi for n, (lo, hi) in zip(x.shape, pads))
    out = np.empty(out_shape, dtype=x.dtype)
    for out_index in np.ndindex(*out_shape):
        src = []
        for i, n, (lo, _) in zip(out_index, x.shape, pads):
            j = source_index(i - lo, n, border)
            if j is None:
                break
            src.append(j)
        out[out_index] = cval if len(src) < x.ndim else x[tuple(src)]
    return out

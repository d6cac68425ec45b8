"""Input data for cases: seeded random arrays, named kernels and real photographs.

A recipe name says what fills an array; the case's shape and dtype say how much and in
what type. Photographs come from scikit-image's bundled data (offline).
"""
from __future__ import annotations

import functools
import math

import numpy as np

from convbench.dtypes import bfloat16_values

# Named 3x3 kernels of the seed workloads (emboss, sharpen and edge are the seed-rgb-filters ones).
NAMED_KERNELS = {
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "emboss": [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]],
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "edge": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
    "sobel": [[1, 0, -1], [2, 0, -2], [1, 0, -1]],
}

GRAY_PHOTOS = ("camera", "moon", "coins", "text", "brick")
RGB_PHOTOS = ("astronaut", "coffee", "chelsea")


class MissingPackage(RuntimeError):
    """An optional package that a case's inputs need is not installed: the cases that need
    it are "unavailable", the others run."""


@functools.lru_cache(maxsize=16)
def photo(name: str) -> np.ndarray:
    """A real photograph as uint8, (H, W) or (H, W, 3). Needs scikit-image."""
    try:
        import skimage.data
    except ImportError as exc:
        raise MissingPackage(f"photo {name!r} needs scikit-image: pip install scikit-image") from exc
    if name not in GRAY_PHOTOS + RGB_PHOTOS:
        raise ValueError(f"unknown photo {name!r}; accepted: {GRAY_PHOTOS + RGB_PHOTOS}")
    img = getattr(skimage.data, name)()
    img.setflags(write=False)
    return img


def photos_available() -> str | None:
    """None when the photographs can be loaded, else the reason."""
    try:
        import skimage.data  # noqa: F401
    except ImportError:
        return "scikit-image is not installed (pip install scikit-image)"
    return None


def gaussian_kernel(shape, sigma: float) -> np.ndarray:
    """Sampled, normalised Gaussian of the given shape (separable: rank 1)."""
    axes = []
    for n in shape:
        t = np.arange(n) - (n - 1) / 2
        g = np.exp(-0.5 * (t / sigma) ** 2)
        axes.append(g / g.sum())
    out = axes[0]
    for g in axes[1:]:
        out = np.multiply.outer(out, g)
    return out


def _random(shape, dtype, rng) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = max(info.min, -30000), min(info.max, 60000)
        return rng.integers(lo, hi, size=shape, endpoint=True).astype(dtype)
    if dtype.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def make_array(recipe: str, shape, dtype, rng: np.random.Generator) -> np.ndarray:
    """Fill ``shape`` with ``recipe``:

    random      standard normal (floats) or uniform over the dtype's range (integers)
    ones        all ones
    nonfinite   random with NaN, +inf and -inf planted (placement must be preserved)
    wide        integers over the dtype's whole range (int64: +-2**56, so that sums of a
                few stay within int64); floats as random
    infpair     random with +inf and -inf planted side by side: the windows that hold
                both must come out NaN
    ties        integer values -4..-1: every window holds equal values (which one a max
                pool picks matters), and all are negative (padding must read as -inf)
    offset      standard normal + 1000: |mean| / std ~ 1000 (a variance that cancels)
    narrow      standard normal * 1e-3: a variance (1e-6) below the usual eps (1e-5)
    positive    uniform in [0.5, 1.5] (variances)
    <kernel>    a named 3x3 kernel (identity, emboss, sharpen, edge, sobel), stacked to rank
    box         normalised box filter
    gauss<s>    sampled Gaussian with sigma s, e.g. gauss5
    <photo>     a real photograph cropped or tiled to shape (camera, moon, coins, text,
                brick; astronaut, coffee, chelsea are RGB)

    dtype 'bfloat16' (numpy has none) gives the float32 recipe rounded to bfloat16, held
    in float32: verification hands it to candidates as a bfloat16 tensor.
    """
    shape = tuple(shape)
    if dtype == "bfloat16":     # numpy has none: float32 arrays holding bfloat16 values
        return bfloat16_values(make_array(recipe, shape, "float32", rng))
    if recipe == "random":
        return _random(shape, dtype, rng)
    if recipe == "ones":
        return np.ones(shape, dtype)
    if recipe == "ties":
        return rng.integers(-4, 0, size=shape).astype(dtype)
    if recipe in ("offset", "narrow"):
        scale, shift = (1.0, 1000.0) if recipe == "offset" else (1e-3, 0.0)
        return (rng.standard_normal(shape) * scale + shift).astype(dtype)
    if recipe == "positive":
        return rng.uniform(0.5, 1.5, size=shape).astype(dtype)
    if recipe == "wide" and np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = (-(2**56), 2**56) if info.bits == 64 else (info.min, info.max)
        return rng.integers(lo, hi, size=shape, endpoint=True, dtype=np.int64).astype(dtype)
    if recipe == "wide":
        return _random(shape, dtype, rng)
    if recipe == "infpair":
        a = _random(shape, dtype, rng)
        flat = a.reshape(-1)
        i = int(rng.integers(0, max(flat.size - 1, 1)))
        flat[i], flat[min(i + 1, flat.size - 1)] = np.inf, -np.inf
        return a
    if recipe == "nonfinite":
        a = _random(shape, dtype, rng)
        flat = a.reshape(-1)
        picks = rng.choice(flat.size, size=min(3, flat.size), replace=False)
        for value, i in zip((np.nan, np.inf, -np.inf), picks):
            flat[i] = value
        return a
    if recipe in NAMED_KERNELS:
        k = np.asarray(NAMED_KERNELS[recipe], dtype=np.float64)
        if len(shape) < 2 or shape[:2] != k.shape:
            raise ValueError(f"kernel {recipe!r} is 3x3: it fills shapes (3, 3, ...), not {shape}")
        return np.broadcast_to(k.reshape(k.shape + (1,) * (len(shape) - 2)), shape).astype(dtype)
    if recipe == "box":
        return np.full(shape, 1.0 / math.prod(shape)).astype(dtype)
    if recipe.startswith("gauss"):
        return gaussian_kernel(shape, float(recipe[5:])).astype(dtype)
    if recipe in GRAY_PHOTOS + RGB_PHOTOS:
        img = photo(recipe)
        if len(shape) < img.ndim:  # an RGB photo as a 2-D image: its luma (ITU-R BT.601)
            img = np.rint(img @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
        img = img.reshape(img.shape + (1,) * (len(shape) - img.ndim))
        img = np.tile(img, [math.ceil(n / m) for n, m in zip(shape, img.shape)])
        return np.ascontiguousarray(img[tuple(slice(0, n) for n in shape)]).astype(dtype)
    raise ValueError(f"unknown data recipe {recipe!r}")

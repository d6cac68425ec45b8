"""Gaussian filter oracle: correlation with the sampled, truncated, normalised Gaussian.

On every axis ``a`` with ``sigma[a] > 0`` the 1-D kernel is scipy.ndimage's::

    radius = int(truncate * sigma + 0.5)
    g[t]   = exp(-t**2 / (2 sigma**2)) / sum_s exp(-s**2 / (2 sigma**2)),   t = -radius..radius

and the N-D filter is ``refimpl.correlate.correlate(x, G, border, cval, padding="same")``
with ``G`` the outer product of the per-axis kernels (an axis with ``sigma = 0`` gets the
kernel ``[1]``: no filtering on it). The kernel is symmetric, so correlate = convolve.

The default border is ``"constant"`` (cval 0), like every op of this project.
scipy.ndimage.gaussian_filter's default is its ``'reflect'``, which is our ``"symmetric"``
(``b a | a b c d``): pass ``border="symmetric"`` to get scipy's default result.

>>> import numpy as np
>>> gaussian_kernel1d(1.0, 1).round(6)                 # exp(-1/2) = 0.606531 at t = +-1
array([0.274069, 0.451863, 0.274069])
>>> x = np.array([0., 0., 4., 0., 0.])
>>> gaussian(x, 1.0, truncate=1.0).round(6)            # radius 1: 4 * kernel around x[2]
array([0.      , 1.096274, 1.807451, 1.096274, 0.      ])
>>> gaussian(x, 1.0, truncate=1.0, border="edge", out_dtype="uint8")
array([0, 1, 2, 1, 0], dtype=uint8)
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from refimpl import correlate as _correlate
from refimpl.dtypes import round_saturate
from refimpl.pad import canonical_border

REAL_DTYPES = tuple(d for d in _correlate.SUPPORTED_DTYPES if not d.startswith("complex"))


def kernel_radius(sigma: float, truncate: float = 4.0) -> int:
    """scipy.ndimage's radius: ``int(truncate * sigma + 0.5)`` (0 when sigma is 0).

    >>> kernel_radius(5.0), kernel_radius(1.5), kernel_radius(0.0), kernel_radius(20.0, 3.0)
    (20, 6, 0, 60)
    """
    return int(truncate * sigma + 0.5)


def gaussian_kernel1d(sigma: float, radius: int) -> np.ndarray:
    """``exp(-t**2 / (2 sigma**2))`` for ``t = -radius..radius``, normalised to sum 1.
    ``sigma = 0`` gives the unit impulse."""
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    if sigma == 0:
        return (t == 0).astype(np.float64)
    g = np.exp(-(t * t) / (2.0 * sigma * sigma))
    return g / g.sum()


def _as_number(value, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    return float(value)


def validate(x_shape, x_dtype, sigma, *, border="constant", cval=0.0, truncate=4.0):
    """Check the arguments before any work; return (per-axis sigmas, per-axis radii,
    canonical border). Errors name the argument and what is accepted."""
    if np.dtype(x_dtype).name not in REAL_DTYPES:
        raise TypeError(f"x has unsupported dtype {np.dtype(x_dtype)}; accepted: {', '.join(REAL_DTYPES)}")
    ndim = len(x_shape)
    if ndim == 0:
        raise ValueError("x must have at least one axis")
    if 0 in x_shape:
        raise ValueError(f"x is empty (shape {tuple(x_shape)}); every axis needs at least one sample")
    if sigma is None:
        raise TypeError("sigma is required: a number, or one number per axis of x")
    if isinstance(sigma, (str, bytes)) or not hasattr(sigma, "__len__"):
        sigmas = (_as_number(sigma, "sigma"),) * ndim
    else:
        items = list(np.asarray(sigma, dtype=object).reshape(-1)) if isinstance(sigma, np.ndarray) else list(sigma)
        if len(items) != ndim:
            raise ValueError(f"sigma must be a number or have one entry per axis of x ({ndim}), "
                             f"got {len(items)} entries: {sigma!r}")
        sigmas = tuple(_as_number(s, "sigma") for s in items)
    for s in sigmas:
        if not math.isfinite(s) or s < 0:
            raise ValueError(f"sigma must be finite and >= 0 on every axis, got {sigma!r}")
    truncate = _as_number(truncate, "truncate")
    if not math.isfinite(truncate) or truncate <= 0:
        raise ValueError(f"truncate must be a finite number > 0, got {truncate!r}")
    border = canonical_border(border)
    if isinstance(cval, (complex, np.complexfloating)) or not isinstance(cval, numbers.Real) \
            or not math.isfinite(cval):
        raise ValueError(f"cval must be a finite real number, got {cval!r}")
    radii = tuple(kernel_radius(s, truncate) for s in sigmas)
    return sigmas, radii, border


def gaussian_kernel(sigmas, truncate: float = 4.0) -> np.ndarray:
    """The N-D kernel: outer product of ``gaussian_kernel1d`` over the axes.

    >>> gaussian_kernel((1.0, 0.0), truncate=1.0).round(4)   # sigma 0: a kernel [1] on axis 1
    array([[0.2741],
           [0.4519],
           [0.2741]])
    """
    out = np.ones(())
    for s in sigmas:
        out = np.multiply.outer(out, gaussian_kernel1d(s, kernel_radius(s, truncate)))
    return out


def gaussian(x, sigma, *, border="constant", cval=0.0, truncate=4.0, out_dtype=None):
    """Gaussian filter: ``correlate(x, gaussian_kernel(sigma, truncate), border, cval)``,
    output shape = x's. Float64 result unless ``out_dtype`` is given (integers: round half
    to even, saturate). ``sigma``: one number, or one per axis (0 = that axis untouched)."""
    x = np.asarray(x)
    sigmas, _, border = validate(x.shape, x.dtype, sigma, border=border, cval=cval, truncate=truncate)
    w = gaussian_kernel(sigmas, truncate)
    return round_saturate(_correlate.correlate(x, w, border=border, cval=cval), out_dtype)

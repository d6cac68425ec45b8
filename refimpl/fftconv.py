"""The FFT route for correlate, convolve and conv: an algorithm, not a different answer.

Every function here equals its direct oracle (refimpl.correlate, refimpl.conv) within
rounding, for every border: the border is applied first, by padding, and only then does
the Fourier transform enter, as a *linear* convolution.

Linear convolution by FFT. For a padded image ``xp`` of length P and a kernel ``v`` of
length K, the linear convolution ``c[m] = sum_j v[j] * xp[m - j]`` has length P + K - 1.
The DFT turns products into *circular* convolutions of the transform length L::

    IFFT_L(FFT_L(xp) * FFT_L(v))[m] = sum_{t = m (mod L)} c[t]

so output ``m`` also collects the terms ``c[m + L], c[m + 2L], ...`` (circular aliasing).
Zero-padding both to ``L >= P + K - 1`` leaves nothing past ``L - 1`` to fold back, and
the product gives ``c`` exactly (up to rounding). Every axis works the same way. (Only the
'valid' indices K-1 .. P-1 are kept, and ``L >= P`` would already spare them, since the
aliased terms land on indices below K-1; this is what overlap-save uses. The oracle keeps
the full length so that every index of ``c`` means what it says.)

Wrap border. Padding by ``wrap`` and then convolving linearly is the same as convolving
circularly on the original grid, so ``fft_convolve(x, w, border="wrap")`` is an exact
circular convolution; see ``circular_convolve`` for the relation with the anchor.

Complex inputs are computed in complex128 and the kernel is not conjugated (each function's
sum is its whole definition; scipy.ndimage.correlate conjugates a complex kernel, we do not);
real inputs give float64.
"""
from __future__ import annotations

import numpy as np

from refimpl.correlate import validate
from refimpl.geometry import conv_output_shape, layer_padding, positive_tuple
from refimpl.pad import canonical_border, pad


def _as_float(a, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "biufc":
        raise TypeError(f"{name} must hold numbers, got dtype {a.dtype}")
    if a.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {a.shape}")
    return a.astype(np.complex128 if a.dtype.kind == "c" else np.float64)


def _valid_linear_correlate(xp: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``y[i] = sum_j w[j] * xp[i + j]`` for i = 0 .. P - K on every axis, by FFT.

    Correlating with ``w`` is convolving with ``v = w`` reversed: the linear convolution
    ``c = xp * v`` has length P + K - 1 and ``y[i] = c[i + K - 1]``.
    """
    axes = tuple(range(xp.ndim))
    sizes = [p + k - 1 for p, k in zip(xp.shape, w.shape)]       # no circular aliasing
    v = np.flip(w)
    c = np.fft.ifftn(np.fft.fftn(xp, s=sizes, axes=axes) * np.fft.fftn(v, s=sizes, axes=axes),
                     axes=axes)
    c = c[tuple(slice(k - 1, p) for p, k in zip(xp.shape, w.shape))]   # indices K-1 .. P-1
    if np.iscomplexobj(xp) or np.iscomplexobj(w):
        return c
    return c.real


def _image_form(x, w, border, cval, padding, origin, convolve: bool) -> np.ndarray:
    x, w = np.asarray(x), np.asarray(w)
    # the direct oracle's checks, so both routes refuse the same inputs with the same words
    border, pads = validate(x.shape, w.shape, x.dtype, w.dtype, border=border, cval=cval,
                            padding=padding, origin=origin, convolve=convolve)
    x, w = _as_float(x, "x"), _as_float(w, "w")
    xp = pad(x, pads, border, cval=cval)
    # convolve is correlate with the kernel reversed on every axis (and its own anchor)
    kernel = np.flip(w) if convolve else w
    return _valid_linear_correlate(xp, kernel)


def fft_correlate(x, w, *, border: str = "constant", cval: float = 0.0,
                  padding: str = "same", origin=0) -> np.ndarray:
    """Correlation of ``x`` with ``w`` (no kernel reversal), computed by FFT.

    With ``xp = pad(x, image_padding(w.shape, padding, origin), border, cval)``::

        y[i] = sum_j w[j] * xp[i + j]                                  (direct sum)
             = IFFT(FFT(xp) * FFT(w_rev))[i + K - 1],  i = 0 .. P - K   (valid indices)

    where ``w_rev`` is ``w`` reversed on every axis, K its shape and P the shape of ``xp``,
    both transforms zero-padded to ``P + K - 1`` per axis so that the circular convolution
    the DFT computes is the linear one (see the module docstring). Same arguments and
    result as the direct oracle ``refimpl.correlate.correlate``: N-D, float64 (complex128
    for complex input). 'same' output has x's shape, the kernel anchor at
    ``k//2 + origin`` (scipy.ndimage.correlate); 'valid' and 'full' are scipy.signal's.

    >>> import numpy as np
    >>> from refimpl.pad import pad
    >>> from refimpl.geometry import image_padding
    >>> x = np.array([1., 2., 4., 8., 16.])
    >>> w = np.array([1., -3., 0.25])
    >>> y = fft_correlate(x, w, border="reflect")
    >>> print(np.round(y, 12))
    [ -0.5  -4.   -8.  -16.  -38. ]
    >>> xp = pad(x, image_padding(w.shape), "reflect")          # [2, 1, 2, 4, 8, 16, 8]
    >>> direct = np.array([sum(w[j] * xp[i + j] for j in range(3)) for i in range(5)])
    >>> print(direct)
    [ -0.5  -4.   -8.  -16.  -38. ]
    >>> bool(np.max(np.abs(y - direct)) < 1e-12)
    True
    """
    return _image_form(x, w, border, cval, padding, origin, convolve=False)


def fft_convolve(x, w, *, border: str = "constant", cval: float = 0.0,
                 padding: str = "same", origin=0) -> np.ndarray:
    """True convolution of ``x`` with ``w``, computed by FFT.

    With ``xp = pad(x, image_padding(w.shape, padding, origin, convolve=True), border, cval)``::

        y[i] = sum_j w[K - 1 - j] * xp[i + j]                           (direct sum)
             = IFFT(FFT(xp) * FFT(w))[i + K - 1],  i = 0 .. P - K        (valid indices)

    the transforms zero-padded to ``P + K - 1`` per axis as in ``fft_correlate``. 'same'
    equals scipy.ndimage.convolve for every border (an even kernel's anchor moves one
    sample, as there); 'valid' and 'full' equal scipy.signal.convolve with border
    'constant' and cval 0.

    >>> import numpy as np
    >>> x = np.array([1., 2., 3., 4., 5., 6.])
    >>> print(np.round(fft_convolve(x, np.array([1., 3.]), border="edge"), 12))
    [ 5.  9. 13. 17. 21. 24.]
    >>> print(np.round(fft_convolve(x, np.array([1., 3.]), padding="full"), 12))
    [ 1.  5.  9. 13. 17. 21. 18.]
    """
    return _image_form(x, w, border, cval, padding, origin, convolve=True)


def circular_convolve(x, w) -> np.ndarray:
    """Circular convolution on ``x``'s grid, by the DFT of ``x``'s own shape::

        y[i] = sum_j w[j] * x[(i - j) mod n]    (every axis; n = x.shape)
             = IFFT_n(FFT_n(x) * FFT_n(w0))

    where ``w0`` is ``w`` zero-padded at the high end to ``x``'s shape, so the kernel's
    origin is index 0. Here the DFT's circular convolution is the definition itself,
    so no extra zero-padding is needed; ``w`` must be no larger than ``x`` on any axis.

    Relation to the image form: ``fft_convolve(x, w, border="wrap", origin=o)`` (padding
    'same') equals ``circular_convolve(x, roll(w0, -a))`` with the anchor
    ``a = k//2 + o`` per axis, for odd and even kernels. Derivation (one axis): 'same'
    convolve pads ``low = k//2 - o - [k even]`` samples before x, and wrap padding reads
    ``xp[m] = x[(m - low) mod n]``, so with ``t = k - 1 - j``::

        y[i] = sum_j w[k-1-j] * xp[i + j] = sum_t w[t] * x[(i - (t - a)) mod n],
        a = k - 1 - low = k//2 + o,

    which is circular convolution with the kernel sample ``w[t]`` moved to ``(t - a) mod n``.

    >>> import numpy as np
    >>> x = np.array([1., 2., 3., 4.])
    >>> print(np.round(circular_convolve(x, np.array([1., 10.])), 12))   # x[i] + 10 x[i-1]
    [41. 12. 23. 34.]
    """
    x = _as_float(x, "x")
    w = _as_float(w, "w")
    if x.ndim != w.ndim or x.ndim == 0:
        raise ValueError(
            f"x and w must have the same rank (>= 1), got x.shape={x.shape}, w.shape={w.shape}")
    if any(k > n for k, n in zip(w.shape, x.shape)):
        raise ValueError(
            f"circular_convolve needs a kernel no larger than x on every axis, "
            f"got x.shape={x.shape}, w.shape={w.shape}")
    axes = tuple(range(x.ndim))
    y = np.fft.ifftn(np.fft.fftn(x, axes=axes) * np.fft.fftn(w, s=x.shape, axes=axes), axes=axes)
    if np.iscomplexobj(x) or np.iscomplexobj(w):
        return y
    return y.real


def dilate_kernel(w: np.ndarray, dilation: tuple[int, ...]) -> np.ndarray:
    """Insert ``d - 1`` zeros between kernel taps on each spatial (trailing) axis.

    >>> dilate_kernel(np.array([[[1., 2., 3.]]]), (2,))
    array([[[1., 0., 2., 0., 3.]]])
    """
    spatial = w.shape[w.ndim - len(dilation):]
    lead = w.shape[:w.ndim - len(dilation)]
    out = np.zeros(lead + tuple(d * (k - 1) + 1 for k, d in zip(spatial, dilation)), dtype=w.dtype)
    out[(Ellipsis,) + tuple(slice(None, None, d) for d in dilation)] = w
    return out


def fft_conv(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups: int = 1,
             border: str = "constant", cval: float = 0.0) -> np.ndarray:
    """Layer form (torch.nn.functional.conv1d/2d/3d meanings: cross-correlation), by FFT.

    ``x`` is (N, C, *spatial), ``w`` is (O, C/groups, *k), ``bias`` is (O,) or None.
    With ``xp`` = x padded on the spatial axes by ``layer_padding(...)`` using ``border``
    and ``wd`` = w with ``dilation - 1`` zeros inserted between taps::

        y[n, o, i] = bias[o] + sum_c sum_j wd[o, c, j] * xp[n, g*C/groups + c, i*stride + j]

    where ``g = o // (O/groups)`` is the group of output channel o. The inner sum is the
    stride-1 'valid' correlation computed by FFT (``fft_correlate``'s formula, summed over
    input channels in the frequency domain), then subsampled by ``stride``. The output
    spatial shape is ``conv_output_shape(...)``.

    >>> import numpy as np
    >>> x = np.arange(1., 7.).reshape(1, 1, 6)
    >>> w = np.array([[[1., -1.]]])
    >>> # xp = [1, 1, 2, 3, 4, 5, 6, 6]; xp[i] - xp[i+1] = [0, -1, -1, -1, -1, -1, 0]; every 2nd
    >>> print(np.round(fft_conv(x, w, stride=2, padding=1, border="edge"), 12) + 0.0)
    [[[ 0. -1. -1.  0.]]]
    """
    x = _as_float(x, "x")
    w = _as_float(w, "w")
    if not 3 <= x.ndim <= 5:
        raise ValueError(f"x must be (N, C, *spatial) with 1 to 3 spatial axes, got shape {x.shape}")
    if w.ndim != x.ndim:
        raise ValueError(f"w must be (O, C/groups, *k) with rank {x.ndim}, got shape {w.shape}")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    n_batch, channels = x.shape[:2]
    out_channels, group_channels = w.shape[:2]
    if channels % groups or out_channels % groups:
        raise ValueError(
            f"groups={groups} must divide both input channels {channels} and output channels {out_channels}")
    if group_channels != channels // groups:
        raise ValueError(
            f"w.shape[1] must be C/groups = {channels // groups}, got w.shape={w.shape}")
    if bias is not None:
        bias = _as_float(bias, "bias")
        if bias.shape != (out_channels,):
            raise ValueError(f"bias must have shape ({out_channels},), got {bias.shape}")

    if isinstance(cval, (bool, complex, np.complexfloating)) or not np.isfinite(cval):
        raise ValueError(f"cval must be a finite real number, got {cval!r}")

    spatial_in, kernel = x.shape[2:], w.shape[2:]
    n_spatial = len(spatial_in)
    stride = positive_tuple(stride, n_spatial, "stride")
    dilation = positive_tuple(dilation, n_spatial, "dilation")
    border = canonical_border(border)
    pads = layer_padding(spatial_in, kernel, padding, stride, dilation)
    out_spatial = conv_output_shape(spatial_in, kernel, pads, stride, dilation)

    xp = pad(x, ((0, 0), (0, 0)) + pads, border, cval=cval)
    wd = dilate_kernel(w, dilation)
    axes = tuple(range(2, x.ndim))
    sizes = [p + k - 1 for p, k in zip(xp.shape[2:], wd.shape[2:])]   # no circular aliasing
    xf = np.fft.fftn(xp, s=sizes, axes=axes)                           # (N, C, *L)
    vf = np.fft.fftn(np.flip(wd, axis=axes), s=sizes, axes=axes)       # (O, C/groups, *L)

    out_per_group = out_channels // groups
    yf = np.empty((n_batch, out_channels) + tuple(sizes), dtype=np.complex128)
    for g in range(groups):
        cin = slice(g * group_channels, (g + 1) * group_channels)
        cout = slice(g * out_per_group, (g + 1) * out_per_group)
        # sum over the group's input channels of FFT(xp[n, c]) * FFT(wd_rev[o, c])
        yf[:, cout] = np.einsum("nc...,oc...->no...", xf[:, cin], vf[cout])
    c = np.fft.ifftn(yf, axes=axes)

    # stride-1 valid part starts at K-1 (dilated K); stride subsamples it
    keep = tuple(slice(k - 1, k - 1 + (o - 1) * s + 1, s)
                 for k, o, s in zip(wd.shape[2:], out_spatial, stride))
    y = c[(slice(None), slice(None)) + keep]
    if not (np.iscomplexobj(x) or np.iscomplexobj(w) or np.iscomplexobj(bias)):
        y = y.real
    if bias is not None:
        y = y + bias.reshape((1, out_channels) + (1,) * n_spatial)
    return np.ascontiguousarray(y)

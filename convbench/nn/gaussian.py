"""GaussianBlur: convbench.gaussian as a layer over (N, C, *spatial), each channel of each
sample filtered on its own (the kernel spans the spatial axes only). No parameters.
"""
from __future__ import annotations

import math
import numbers

import torch
from torch.nn import Module

from convbench.nn import ops
from refimpl.pad import canonical_border


class GaussianBlur(Module):
    """Gaussian filter of the spatial axes: scipy.ndimage's sampled, truncated, normalised
    kernel (radius ``int(truncate * sigma + 0.5)``) per axis.

    sigma: one number for every spatial axis, or one per spatial axis (0 leaves that axis
        untouched); finite, >= 0.
    border: what lies beyond the edges: constant (with ``cval``), edge, symmetric, reflect,
        wrap, or their aliases (scipy.ndimage.gaussian_filter's default 'reflect' is our
        'symmetric'; ours is 'constant', like every convbench op).
    algorithm: a candidate name of the gaussian op; None is convbench's default choice.
    """

    def __init__(self, sigma, border="constant", cval=0.0, truncate=4.0, *, algorithm=None):
        super().__init__()
        values = (sigma,) if isinstance(sigma, numbers.Real) else tuple(sigma)
        if not values or not all(isinstance(s, numbers.Real) and not isinstance(s, bool)
                                 and math.isfinite(s) and s >= 0 for s in values):
            raise ValueError(f"sigma must be a finite number >= 0 or a sequence of them (one "
                             f"per spatial axis), got {sigma!r}")
        self.sigma = float(sigma) if isinstance(sigma, numbers.Real) else tuple(map(float, values))
        self.border = canonical_border(border)
        self.cval = float(cval)
        self.truncate = float(truncate)
        self.algorithm = algorithm

    def extra_repr(self) -> str:
        s = f"sigma={self.sigma}, border={self.border}"
        if self.border == "constant" and self.cval != 0:
            s += f", cval={self.cval}"
        s += f", truncate={self.truncate}"
        return s + ("" if self.algorithm is None else f", algorithm={self.algorithm!r}")

    def forward(self, input):
        spatial = input.dim() - 2
        if spatial < 1:
            raise ValueError(f"GaussianBlur expects input (N, C, *spatial) with at least one "
                             f"spatial axis, got shape {tuple(input.shape)}")
        if isinstance(self.sigma, tuple):
            if len(self.sigma) != spatial:
                raise ValueError(f"GaussianBlur has {len(self.sigma)} sigmas, but the input "
                                 f"has {spatial} spatial axes (shape {tuple(input.shape)})")
            sigma = self.sigma
        else:
            sigma = (self.sigma,) * spatial
        # N and C as one unfiltered axis: an image of 1 + spatial axes (a view when it can)
        planes = input.reshape((-1,) + tuple(input.shape[2:]))
        keywords = dict(border=self.border, cval=self.cval, truncate=self.truncate,
                        algorithm=self.algorithm)
        if spatial == 3 and self.border != "constant" and input.requires_grad:
            # the gaussian operator differentiates other borders on 1-3 axes only: one
            # volume at a time
            out = torch.stack([ops().gaussian(v, sigma, **keywords) for v in planes.unbind(0)])
        else:
            out = ops().gaussian(planes, (0.0,) + sigma, **keywords)
        return out.reshape(input.shape)

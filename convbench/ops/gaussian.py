"""The Gaussian filter op: ``gaussian(x, sigma, *, border, cval, truncate, out_dtype)``.

Semantics are refimpl/gaussian.py's: correlation with the sampled, truncated, normalised
Gaussian (scipy.ndimage's kernel, radius ``int(truncate * sigma + 0.5)`` per axis), output
shape = x's, default border "constant" (scipy's default 'reflect' is our "symmetric").

Error terms (convbench.tolerance): ``terms`` = kernel size + 1. The kernel's weights are
irrational: every candidate rounds them to its compute type before multiplying, one more
relative error u per product than a correlate whose kernel is given exactly, hence one
more term in gamma_K. (Separable candidates sum two or three short 1-D passes; their
error is covered by the product's K, which is larger than the sum of the 1-D lengths.)

Reused correlate candidates (the record's ``reuses``) run through ``correlate_call``: the sampled
N-D kernel in the compute type, border and cval as given, and ``out_dtype`` set to the
Gaussian's result dtype where the kernel's dtype would change it (a float16 image gets a
float32 kernel, rounding the weights no worse than a float32 candidate does, and a float16
result).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from convbench import arrays as xp
from convbench.dtypes import result_dtype
from convbench.cases import gaussian as cases
from convbench.ops import (REQUIRED, Asv, Operation, check_cval_fits, nbytes, normalize_out_dtype,
                           shape_str, short_dtype)
from refimpl import correlate as ref_correlate
from refimpl import gaussian as ref


@functools.lru_cache(maxsize=8)
def _kernel(sigmas: tuple, truncate: float) -> np.ndarray:
    w = ref.gaussian_kernel(sigmas, truncate)
    w.setflags(write=False)
    return w


def _g(value) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class Gaussian(Operation):
    """gaussian: one array ``x``; parameters sigma, border, cval, truncate, out_dtype."""

    # -- signature -------------------------------------------------------------------
    def normalize(self, shapes, dtypes, kwargs) -> dict:
        params = super().normalize(shapes, dtypes, kwargs)
        x_dtype = dtypes[0]
        if x_dtype == "bfloat16":
            raise TypeError("x has unsupported dtype bfloat16; accepted: "
                            + ", ".join(ref.REAL_DTYPES))
        sigmas, _, border = ref.validate(shapes[0], x_dtype, params["sigma"], border=params["border"],
                                         cval=params["cval"], truncate=params["truncate"])
        params["sigma"] = sigmas[0] if len(set(sigmas)) == 1 else sigmas
        params["border"] = border
        params["cval"] = float(params["cval"])
        params["truncate"] = float(params["truncate"])
        out = params["out_dtype"] = normalize_out_dtype(params["out_dtype"], self.name)
        check_cval_fits(params["cval"], (result_dtype(x_dtype), out))
        return params

    def sigmas(self, spec) -> tuple[float, ...]:
        sigma = spec.kwargs["sigma"]
        return tuple(sigma) if isinstance(sigma, tuple) else (sigma,) * len(spec.shapes[0])

    def radii(self, spec) -> tuple[int, ...]:
        return tuple(ref.kernel_radius(s, spec.kwargs["truncate"]) for s in self.sigmas(spec))

    def kernel(self, spec) -> np.ndarray:
        """The sampled N-D kernel (float64, read-only, cached)."""
        return _kernel(self.sigmas(spec), spec.kwargs["truncate"])

    def kernel_shape(self, spec) -> tuple[int, ...]:
        return tuple(2 * r + 1 for r in self.radii(spec))

    def spec_id(self, spec) -> str:
        """e.g. ``gaussian-x4096x4096-sigma=5-symmetric-f32``."""
        kw = spec.kwargs
        sigma = kw["sigma"]
        parts = [self.name, f"x{shape_str(spec.shapes[0])}",
                 "sigma=" + (",".join(_g(s) for s in sigma) if isinstance(sigma, tuple) else _g(sigma))]
        if kw["truncate"] != 4.0:
            parts.append(f"truncate={_g(kw['truncate'])}")
        if kw["cval"] != 0.0:
            parts.append(f"cval={_g(kw['cval'])}")
        if kw["out_dtype"] is not None:
            parts.append(f"out_dtype={kw['out_dtype']}")
        parts += [kw["border"], short_dtype(spec.dtypes[0])]
        return "-".join(parts)

    def temporaries(self, spec):
        """The 1-D kernels and a copy of x padded by the radii (the sampled N-D kernel
        is built only for reused correlate candidates, whose own padded copy dominates)."""
        radii = self.radii(spec)
        padded = [n + 2 * r for n, r in zip(spec.shapes[0], radii)]
        return {"kernel": sum(2 * r + 1 for r in radii) * 8,
                "padded copy": nbytes(padded, result_dtype(spec.dtypes[0]))}

    # -- geometry and oracle -----------------------------------------------------------
    def output_shape(self, spec):
        return tuple(spec.shapes[0])

    def oracle(self, spec, arrays):
        kw = spec.kwargs
        return ref.gaussian(arrays[0], self.sigmas(spec), border=kw["border"], cval=kw["cval"],
                            truncate=kw["truncate"])

    def oracle_at(self, spec, arrays, index):
        kw = spec.kwargs
        return ref_correlate.correlate_at(arrays[0], self.kernel(spec), tuple(index),
                                          border=kw["border"], cval=kw["cval"])

    def terms(self, spec):
        return math.prod(self.kernel_shape(spec)) + 1

    def border_zones(self, spec):
        return tuple((r, r) for r in self.radii(spec))

    def fft_sizes(self, spec):
        padded = [n + 2 * r for n, r in zip(spec.shapes[0], self.radii(spec))]
        return math.prod(padded), math.prod(p + 2 * r for p, r in zip(padded, self.radii(spec)))

    # -- through correlate -------------------------------------------------------------
    @staticmethod
    def _through_correlate(x_dtype: str, out_dtype):
        """(kernel dtype, out_dtype) of the correlate call: the kernel in the result type,
        except float16 (its weights would be rounded to 11 bits): a float32 kernel and an
        explicit float16 out_dtype."""
        out = result_dtype(x_dtype)
        if out == np.float16:
            return "float32", out_dtype if out_dtype is not None else "float16"
        return out.name, out_dtype

    def as_correlate(self, spec):
        from convbench.spec import Spec

        kw = spec.kwargs
        w_dtype, out = self._through_correlate(spec.dtypes[0], kw["out_dtype"])
        return Spec.make("correlate", (spec.shapes[0], self.kernel_shape(spec)),
                         (spec.dtypes[0], w_dtype), border=kw["border"], cval=kw["cval"],
                         out_dtype=out)

    def correlate_call(self, arrays, kwargs):
        """(x, sampled kernel), {border, cval[, out_dtype]} for a correlate candidate."""
        x = arrays[0]
        x_dtype = xp.dtype_name(x)
        truncate = float(kwargs.get("truncate", 4.0))
        sigmas, _, border = ref.validate(tuple(x.shape), x_dtype, kwargs["sigma"],
                                         border=kwargs.get("border", "constant"),
                                         cval=kwargs.get("cval", 0.0), truncate=truncate)
        w_dtype, out = self._through_correlate(x_dtype, kwargs.get("out_dtype"))
        w = _kernel(sigmas, truncate).astype(w_dtype)
        if xp.library_of(x) != "numpy":
            w = xp.like(w, x)
        call = {"border": border, "cval": float(kwargs.get("cval", 0.0))}
        if out is not None:
            call["out_dtype"] = out
        return (x, w), call


_PREFERENCE = ("iir_numba", "gaussianblur_opencv", "separable_numpy", "ndimage_scipy",
               "shift_add_numpy")

OPS = {
    "gaussian": Gaussian(
        "gaussian", ("x",),
        (("sigma", REQUIRED), ("border", "constant"), ("cval", 0.0), ("truncate", 4.0),
         ("out_dtype", None)),
        candidates={
            "ndimage_scipy": "candidates.gaussian.ndimage_scipy",
            "gaussianblur_opencv": "candidates.gaussian.gaussianblur_opencv",
            "iir_numba": "candidates.gaussian.iir_numba",
        },
        peers=frozenset({"ndimage_scipy", "gaussianblur_opencv"}),
        reuses="correlate",
        preference={"numpy": _PREFERENCE, "torch": _PREFERENCE},
        suites={"small": cases.small_gaussian_cases, "images": cases.image_gaussian_cases,
                "quick": cases.quick_gaussian_cases},
        asv=Asv(time=(("quick", 1),)),
    ),
}

"""Image-form ops: correlate and convolve (scipy.ndimage-like signature)."""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from convbench import arrays as xp
from convbench import values
from convbench.dtypes import result_dtype
from convbench.cases import correlate as cases
from convbench.ops import Asv, Operation, check_cval_fits, nbytes, normalize_out_dtype
from refimpl import correlate as ref_correlate
from refimpl.geometry import as_tuple, convolve_as_correlate_origin
from refimpl.pad import canonical_border


@dataclass(frozen=True)
class ImageFilter(Operation):
    """correlate / convolve: ``f(x, w, *, border, cval, padding, origin, out_dtype)``."""

    convolve: bool = False

    def normalize(self, shapes, dtypes, kwargs) -> dict:
        params = super().normalize(shapes, dtypes, kwargs)
        params["border"] = canonical_border(params["border"])
        cval = params["cval"]
        if isinstance(cval, bool) or not isinstance(cval, numbers.Real):
            raise TypeError(f"cval must be a finite real number, got {cval!r}")
        params["cval"] = float(cval)
        params["out_dtype"] = normalize_out_dtype(params["out_dtype"], self.name)
        self.validate(shapes, dtypes, params)   # origin checked as given: length and range
        check_cval_fits(params["cval"], (_computed_in(dtypes), params["out_dtype"]))
        origin = as_tuple(params["origin"], len(shapes[1]), "origin")
        params["origin"] = origin[0] if len(set(origin)) == 1 else origin
        return params

    def validate(self, shapes, dtypes, params):
        return ref_correlate.validate(
            shapes[0], shapes[1], dtypes[0] if dtypes[0] != "bfloat16" else "float32",
            dtypes[1] if dtypes[1] != "bfloat16" else "float32",
            border=params["border"], cval=params["cval"], padding=params["padding"],
            origin=params["origin"], convolve=self.convolve)

    def temporaries(self, spec):
        padded = [n + lo + hi for n, (lo, hi) in zip(spec.shapes[0], self.pads(spec))]
        return {"padded copy": nbytes(padded, _computed_in(spec.dtypes))}

    def pads(self, spec):
        return self.validate(spec.shapes, spec.dtypes, spec.kwargs)[1]

    def output_shape(self, spec):
        return ref_correlate.output_shape(spec.shapes[0], self.pads(spec), spec.shapes[1])

    def _oracle_kwargs(self, spec):
        kw = spec.kwargs
        return dict(border=kw["border"], cval=kw["cval"], padding=kw["padding"], origin=kw["origin"])

    def oracle(self, spec, arrays):
        """float64, or the exact integers (out_dtype applied) of an exact-integer call."""
        fn = ref_correlate.convolve if self.convolve else ref_correlate.correlate
        out_dtype = spec.kwargs["out_dtype"] if values.exact_integer(spec) else None
        return fn(*arrays, out_dtype=out_dtype, **self._oracle_kwargs(spec))

    def oracle_at(self, spec, arrays, index):
        out_dtype = spec.kwargs["out_dtype"] if values.exact_integer(spec) else None
        return ref_correlate.correlate_at(*arrays, index, convolve=self.convolve,
                                          out_dtype=out_dtype, **self._oracle_kwargs(spec))

    def terms(self, spec):
        return math.prod(spec.shapes[1])

    def border_zones(self, spec):
        return self.pads(spec)

    def fft_sizes(self, spec):
        padded = [n + lo + hi for n, (lo, hi) in zip(spec.shapes[0], self.pads(spec))]
        return math.prod(padded), math.prod(p + k - 1 for p, k in zip(padded, spec.shapes[1]))

    def correlate_call(self, arrays, kwargs):
        """convolve(x, w, origin) = correlate(x, reversed w, origin'); geometry gives origin'."""
        x, w = arrays
        origin = convolve_as_correlate_origin(tuple(w.shape), kwargs.get("padding", "same"),
                                              kwargs.get("origin", 0))
        return (x, xp.flip(w)), {**kwargs, "origin": origin}

    def as_correlate(self, spec):
        if not self.convolve:
            return spec
        kw = spec.kwargs
        origin = convolve_as_correlate_origin(spec.shapes[1], kw["padding"], kw["origin"])
        return spec.__class__.make("correlate", spec.shapes, spec.dtypes, **{**kw, "origin": origin})


def _computed_in(dtypes) -> np.dtype:
    """The floating dtype of the result (bfloat16 tensors count as float32, as validate)."""
    return result_dtype(*("float32" if d == "bfloat16" else d for d in dtypes[:2]))


_IMAGE_DEFAULTS = (("border", "constant"), ("cval", 0.0), ("padding", "same"), ("origin", 0),
                   ("out_dtype", None))

# The default choice where the measured table (convbench/choices.json) has no row. "torch"
# means tensors on a GPU (CPU tensors get the numpy choice): cuDNN through torch first,
# then our Triton kernel; not yet measured on a GPU here.
_IMAGE_PREFERENCE = {
    "numpy": ("filter2d_opencv", "separable_numpy", "fft_scipy", "ndimage_scipy", "conv_torch",
              "shift_add_numpy"),
    "torch": ("conv_torch", "direct_triton", "filter2d_opencv", "ndimage_scipy", "shift_add_numpy"),
    "cupy": ("fft_cupy", "ndimage_cupy", "filter2d_opencv", "ndimage_scipy", "shift_add_numpy"),
}

OPS = {
    "correlate": ImageFilter(
        "correlate", ("x", "w"), _IMAGE_DEFAULTS,
        candidates={
            "shift_add_numpy": "candidates.correlate.shift_add_numpy",
            "ndimage_scipy": "candidates.correlate.ndimage_scipy",
            "filter2d_opencv": "candidates.correlate.filter2d_opencv",
            "conv_torch": "candidates.correlate.conv_torch",
            "fft_scipy": "candidates.correlate.fft_scipy",
            "oaconvolve_scipy": "candidates.correlate.oaconvolve_scipy",
            "separable_numpy": "candidates.correlate.separable_numpy",
            "direct_numba": "candidates.correlate.direct_numba",
            "fft_tiled_scipy": "candidates.correlate.fft_tiled_scipy",
            "fftconvolve_scipy": "candidates.correlate.fftconvolve_scipy",
            "ndimage_cupy": "candidates.correlate.ndimage_cupy",
            "fft_cupy": "candidates.correlate.fft_cupy",
            "direct_triton": "candidates.correlate.direct_triton",
            "separable_numba": "candidates.correlate.separable_numba",
            "fft_ducc": "candidates.correlate.fft_ducc",
        },
        peers=frozenset({"ndimage_scipy", "filter2d_opencv", "conv_torch", "oaconvolve_scipy",
                         "fftconvolve_scipy", "ndimage_cupy"}),
        preference=_IMAGE_PREFERENCE,
        suites={"small": cases.small_image_cases, "quick": cases.quick_image_cases,
                "seed": cases.seed_image_cases, "images": cases.image_sweep_cases,
                "real": cases.real_image_cases, "gpu": cases.gpu_image_cases},
        asv=Asv(time=(("quick", ("camera-sharpen", "seed-fft-1k")),), peakmem=1),
    ),
    # correlate on the reversed kernel: every correlate candidate is a convolve candidate
    "convolve": ImageFilter(
        "convolve", ("x", "w"), _IMAGE_DEFAULTS, convolve=True,
        reuses="correlate",
        preference=_IMAGE_PREFERENCE,
        suites={"small": cases.small_image_cases,
                "quick": lambda op: cases.quick_image_cases(op)[:2],
                "real": cases.real_image_cases},
    ),
}

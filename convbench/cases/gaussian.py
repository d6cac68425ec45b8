"""Cases of the Gaussian filter: verification set and workloads."""
from __future__ import annotations

from convbench.cases import Case
from convbench.spec import Spec
from refimpl.pad import BORDERS


def gaussian_case(shape, sigma, dtype="float32", data=(), strided=False, name="", tags=(),
                  op="gaussian", **kwargs) -> Case:
    spec = Spec.make(op, (shape,), (dtype,), sigma=sigma, **kwargs)
    return Case(spec, tuple(data), strided, name, tuple(tags))


def small_gaussian_cases(op: str = "gaussian") -> list[Case]:
    """Tiny images (the oracle computes them whole): sigma 1, 1.5 and 3, every border,
    kernels longer than the image (padding wider than the image), per-axis sigma and a
    zero sigma, 1-D to 3-D, integer images with and without out_dtype, float16, strided
    views, non-finite values, a short truncate, and a sigma below the recursive filter's
    range."""
    cases = []
    add = cases.append
    for border in BORDERS:
        add(gaussian_case((9,), 1.0, "float64", border=border, cval=1.5))
        add(gaussian_case((7,), 1.5, "float64", border=border))                 # kernel 13 > 7
        add(gaussian_case((8, 7), 1.0, "float32", border=border))
        add(gaussian_case((10, 9), (1.5, 1.0), "float32", border=border))       # per-axis sigma
        add(gaussian_case((6, 5), 3.0, "float32", border=border, cval=-0.5))    # kernel 25 > 6
        add(gaussian_case((1, 1), 1.0, "float32", border=border))               # 1 pixel
        add(gaussian_case((5, 6, 4), 1.0, "float32", border=border))            # 3-D
        add(gaussian_case((10, 9), 1.0, "float32", border=border, strided=True))
        add(gaussian_case((9, 8), 1.5, "uint8", data=("camera",), border=border, out_dtype="uint8"))
    add(gaussian_case((12, 12), 3.0, "float32", data=("camera",), border="symmetric"))
    add(gaussian_case((12, 12), 2.0, "uint8", data=("camera",), border="reflect"))  # float result
    add(gaussian_case((7, 8), 1.0, "uint8", data=("camera",), cval=300.0))    # cval beyond uint8
    add(gaussian_case((12, 12, 3), (1.5, 1.5, 0.0), "float32", data=("astronaut",),
                      border="symmetric"))                                       # channels untouched
    add(gaussian_case((6, 7, 5), (1.0, 0.0, 1.5), "float64", border="wrap"))
    add(gaussian_case((8, 8), 1.0, "float16", border="edge"))
    add(gaussian_case((12, 12), 1.5, "float16", border="symmetric"))
    add(gaussian_case((8, 8), 1.0, "uint16", border="reflect"))
    add(gaussian_case((8, 8), 1.0, "int16", border="edge", out_dtype="int16"))
    add(gaussian_case((9, 9), 1.0, "float64", data=("nonfinite",)))
    add(gaussian_case((9, 9), 1.5, "float32", data=("nonfinite",), border="wrap"))
    add(gaussian_case((10, 10), 1.5, "float32", border="edge", truncate=2.0))   # short truncate
    add(gaussian_case((11,), 1.0, "float64", border="reflect", truncate=2.5))
    add(gaussian_case((9, 9), 0.3, "float32", border="symmetric"))              # radius 1
    add(gaussian_case((20,), 0.0, "float64", border="constant"))               # identity
    return cases


def image_gaussian_cases(op: str = "gaussian") -> list[Case]:
    """The Gaussian workloads of the image-filtering sweep (sigma 1, 5, 20)."""
    cases = [gaussian_case((4096, 4096), s, "float32", border="symmetric") for s in (1.0, 5.0, 20.0)]
    cases.append(gaussian_case((1024, 1024), 5.0, "float32", border="symmetric"))
    cases.append(gaussian_case((512, 512), 2.0, "uint8", data=("camera",), border="symmetric",
                               out_dtype="uint8"))
    return cases


def quick_gaussian_cases(op: str = "gaussian") -> list[Case]:
    return [gaussian_case((1024, 1024), 5.0, "float32", border="symmetric")]

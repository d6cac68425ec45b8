"""Cases of the image form (correlate, convolve): verification set and workloads."""
from __future__ import annotations

import numpy as np

from convbench.cases import Case
from convbench.spec import Spec


def image_case(op, x_shape, w_shape, dtype="float32", w_dtype=None, data=(), strided=False,
               name="", tags=(), **kwargs) -> Case:
    if w_dtype is None:
        w_dtype = dtype if np.dtype(dtype).kind in "fc" else "float32"
    spec = Spec.make(op, (x_shape, w_shape), (dtype, w_dtype), **kwargs)
    return Case(spec, tuple(data), strided, name, tuple(tags))


BORDERS = ("constant", "edge", "symmetric", "reflect", "wrap")


def small_image_cases(op: str) -> list[Case]:
    """Small verification cases for correlate/convolve (oracle computed whole)."""
    cases = []
    add = cases.append
    for border in BORDERS:
        add(image_case(op, (9,), (3,), "float64", border=border, cval=1.5))
        add(image_case(op, (7,), (4,), "float64", border=border))                  # even kernel
        add(image_case(op, (3,), (7,), "float64", border=border))                  # kernel > image
        add(image_case(op, (1,), (3,), "float64", border=border))                  # 1 sample
        add(image_case(op, (8, 7), (3, 3), "float32", border=border))
        add(image_case(op, (6, 9), (2, 4), "float32", border=border))              # even 2-D
        add(image_case(op, (4, 3), (5, 6), "float32", border=border))              # kernel > image
        add(image_case(op, (1, 1), (3, 3), "float32", border=border))              # 1 pixel
        add(image_case(op, (5, 6, 4), (3, 2, 3), "float32", border=border))        # 3-D
        add(image_case(op, (3, 4, 3, 4), (2, 3, 2, 2), "float64", border=border))  # 4-D
        add(image_case(op, (10, 9), (3, 3), "float32", border=border, strided=True))
        add(image_case(op, (12, 11), (5, 4), "float32", border=border, origin=(-1, 1)))
        add(image_case(op, (10, 10), (3, 3), "uint8", border=border))
        add(image_case(op, (9, 8), (3, 3), "uint8", data=("camera", "sharpen"), border=border,
                       out_dtype="uint8"))
    for padding in ("valid", "full"):
        add(image_case(op, (11,), (4,), "float64", padding=padding))
        add(image_case(op, (9, 8), (3, 2), "float32", padding=padding))
        add(image_case(op, (7, 6), (3, 3), "float32", padding=padding, border="symmetric"))
        add(image_case(op, (5, 6, 4), (2, 3, 3), "float64", padding=padding))
    add(image_case(op, (5, 5), (5, 5), "float32", padding="valid"))
    add(image_case(op, (9, 9), (3, 3), "float32", origin=1))
    add(image_case(op, (8, 8), (4, 4), "float32", origin=-2, border="reflect"))
    add(image_case(op, (8, 8), (3, 3), "float16", border="edge"))
    add(image_case(op, (12, 12), (7, 7), "float16", border="symmetric"))
    add(image_case(op, (8, 8), (3, 3), "uint16", border="reflect"))
    add(image_case(op, (8, 8), (3, 3), "int16", border="edge"))
    add(image_case(op, (8, 8), (3, 3), "uint8", data=("random", "box"), out_dtype="uint8"))
    add(image_case(op, (8, 8), (3, 3), "int16", data=("random", "edge"), out_dtype="int16",
                   border="wrap"))
    add(image_case(op, (8, 8), (3, 3), "uint8", w_dtype="float64", border="symmetric"))
    add(image_case(op, (9, 9), (3, 3), "float64", data=("nonfinite",)))
    add(image_case(op, (9, 9), (3, 3), "float32", data=("nonfinite",), border="wrap"))
    # IEEE special values: 0 * Inf (zero taps of 'edge'), Inf - Inf in one window, a NaN
    # or Inf in the kernel: NaN/Inf placement must be the oracle's
    add(image_case(op, (9, 9), (3, 3), "float32", data=("nonfinite", "edge"), border="edge"))
    add(image_case(op, (10, 9), (5, 5), "float64", data=("infpair",), border="symmetric"))
    add(image_case(op, (8, 8), (3, 3), "float32", data=("infpair", "sharpen"), border="reflect"))
    add(image_case(op, (8, 7), (3, 3), "float64", data=("random", "nonfinite")))
    # exact integers: integer image, kernel and out_dtype give the oracle's exact sums (int32
    # above 2**24, uint32 near 2**32, int64 near 2**56, saturating where they overflow)
    add(image_case(op, (6, 5), (3, 3), "int32", w_dtype="int32", data=("wide",),
                   out_dtype="int32", border="edge"))
    add(image_case(op, (8, 8), (3, 3), "int32", w_dtype="int32", data=("random", "edge"),
                   out_dtype="int64"))
    add(image_case(op, (7, 6), (2, 2), "uint32", w_dtype="uint8", data=("wide", "ones"),
                   out_dtype="uint32", border="wrap"))
    add(image_case(op, (5, 6), (1, 3), "int64", w_dtype="int64", data=("wide", "ones"),
                   out_dtype="int64", border="reflect"))
    add(image_case(op, (9, 8), (3, 3), "int16", w_dtype="int16", data=("random", "sharpen"),
                   out_dtype="int16", border="symmetric"))
    add(image_case(op, (16, 16, 3), (3, 3, 1), "float32", data=("astronaut", "emboss"),
                   border="symmetric"))
    return cases


def quick_image_cases(op: str = "correlate") -> list[Case]:
    """The README's main job: real workloads that a 2-core machine times in seconds."""
    return [
        image_case(op, (512, 512), (3, 3), "float32", data=("camera", "sharpen"),
                   border="symmetric", name="camera-sharpen"),
        image_case(op, (512, 512), (5, 5), "uint8", data=("camera", "gauss1"), border="edge",
                   out_dtype="uint8", name="camera-gauss-u8"),
        image_case(op, (1000, 1000), (3, 3), "float64", border="symmetric", name="seed-imfilter-3x3"),
        image_case(op, (1000, 1000), (15, 15), "float32", border="constant", name="seed-fft-1k"),
        image_case(op, (512, 512, 3), (3, 3, 1), "float32", data=("astronaut", "emboss"),
                   border="reflect", name="seed-rgb-filters"),
    ]


def seed_image_cases(op: str = "correlate") -> list[Case]:
    return [
        image_case(op, (1000, 1000), (15, 15), "float32", border="constant", name="seed-fft-1k"),
        image_case(op, (10000, 10000), (15, 15), "float32", border="constant", name="seed-fft-10k",
                   tags=("large",)),
        image_case(op, (1000, 1000), (3, 3), "float64", border="symmetric", name="seed-imfilter-3x3"),
        image_case(op, (900, 900), (3, 3), "float64", border="symmetric", strided=True,
                   name="seed-imfilter-3x3-view"),
        *[image_case(op, (512, 512, 3), (3, 3, 1), "float32", data=("astronaut", k),
                     border="reflect", name=f"seed-rgb-{k}") for k in ("emboss", "sharpen", "edge")],
    ]


def image_sweep_cases(op: str = "correlate") -> list[Case]:
    """The image-filtering sweep, as a chosen grid: every kernel size at 1024² (random and
    Gaussian), every border at 1024² 7x7, the 1-D kernels, uint8, and 512²/4096² ends."""
    cases = []
    for k in (3, 5, 7, 15, 31, 63):
        cases.append(image_case(op, (1024, 1024), (k, k), "float32", name="sweep"))
    for sigma, k in ((1, 7), (5, 31), (20, 63)):
        cases.append(image_case(op, (1024, 1024), (k, k), "float32", data=("random", f"gauss{sigma}"),
                                border="symmetric", name="sweep"))
    for border in BORDERS[1:]:  # constant is in the kernel-size loop
        cases.append(image_case(op, (1024, 1024), (7, 7), "float32", border=border, name="sweep"))
    for shape in ((1, 31), (31, 1)):
        cases.append(image_case(op, (1024, 1024), shape, "float32", border="edge", name="sweep"))
    for k in (3, 7, 15):
        cases.append(image_case(op, (1024, 1024), (k, k), "uint8", data=("camera", "box"),
                                border="edge", out_dtype="uint8", name="sweep"))
    for size in (512, 4096):
        for k in (3, 15):
            cases.append(image_case(op, (size, size), (k, k), "float32", border="reflect", name="sweep"))
    cases.append(image_case(op, (4096, 4096), (31, 31), "float32", data=("random", "gauss5"),
                            border="symmetric", name="sweep"))
    return cases


def real_image_cases(op: str = "correlate") -> list[Case]:
    cases = []
    for photo, shape in (("camera", (512, 512)), ("coins", (303, 384)), ("text", (172, 448)),
                         ("moon", (512, 512)), ("brick", (512, 512))):
        for kernel, border in (("sharpen", "symmetric"), ("edge", "reflect"), ("emboss", "edge")):
            cases.append(image_case(op, shape, (3, 3), "uint8", data=(photo, kernel), border=border,
                                    out_dtype="uint8", name=f"photo-{photo}"))
        cases.append(image_case(op, shape, (9, 9), "float32", data=(photo, "gauss2"),
                                border="symmetric", name=f"photo-{photo}"))
    for photo, shape in (("coffee", (400, 600, 3)), ("chelsea", (300, 451, 3))):
        cases.append(image_case(op, shape, (3, 3, 1), "float32", data=(photo, "sharpen"),
                                border="reflect", name=f"photo-{photo}"))
    return cases


def gpu_image_cases(op: str = "correlate") -> list[Case]:
    """The GPU suite: the seed's FFT workloads at full size, plus the 9000x9000 of
    its GPU figure (23.5 s with transfers, ~1 s without), the RGB filters, and every border
    on a 2048x2048 image with a 7x7 kernel (direct_triton's in-kernel border maps against
    ndimage_cupy's and fft_cupy's padded copy)."""
    cases = [
        image_case(op, (1000, 1000), (15, 15), "float32", border="constant", name="seed-fft-1k"),
        image_case(op, (9000, 9000), (15, 15), "float32", border="constant", name="seed-fft-10k",
                   tags=("large",)),
        image_case(op, (10000, 10000), (15, 15), "float32", border="constant",
                   name="seed-fft-10k", tags=("large",)),
        *[image_case(op, (512, 512, 3), (3, 3, 1), "float32", data=("astronaut", k),
                     border="reflect", name=f"seed-rgb-{k}") for k in ("emboss", "sharpen", "edge")],
    ]
    for border in BORDERS:
        cases.append(image_case(op, (2048, 2048), (7, 7), "float32", border=border,
                                name="gpu-borders"))
    return cases

"""Array-library plumbing: which library an array belongs to, and conversions.

torch and cupy are never imported here: an array's type is read from its module name, so
a CPU machine never pays for (or fails on) importing cupy.
"""
from __future__ import annotations

import numpy as np

LIBRARIES = ("numpy", "torch", "cupy")


def library_of(a) -> str:
    """'numpy', 'torch', 'cupy' or 'dask' for an array; TypeError for anything else.

    Python scalars and lists count as numpy (as numpy.asarray would take them).
    """
    module = type(a).__module__.split(".")[0]
    if module == "torch":
        return "torch"
    if module == "cupy":
        return "cupy"
    if module == "dask":        # before __array__, which would compute the whole array
        return "dask"
    if isinstance(a, (np.ndarray, np.generic, list, tuple, int, float)) or hasattr(a, "__array__"):
        return "numpy"
    raise TypeError(f"expected a numpy array, torch tensor or cupy array, got {type(a).__name__}")


def common_library(arrays, names) -> str:
    """The one library all ``arrays`` belong to; a clear error for a mix."""
    libs = {}
    for name, a in zip(names, arrays):
        if a is None:
            continue
        try:
            libs[name] = library_of(a)
        except TypeError as exc:
            raise TypeError(f"{name}: {exc}") from None
    found = set(libs.values())
    if "dask" in found and found <= {"dask", "numpy"}:
        return "dask"           # a dask image with a numpy kernel: run chunk by chunk
    if len(found) > 1:
        detail = ", ".join(f"{n} is {lib}" for n, lib in libs.items())
        raise TypeError(f"arrays from different libraries cannot be mixed ({detail}); "
                        "convert them to one of numpy, torch, cupy")
    if "torch" in found:
        devices = {str(a.device) for a in arrays if a is not None}
        if len(devices) > 1:
            raise ValueError(f"tensors on different devices cannot be mixed: {sorted(devices)}")
    return found.pop() if found else "numpy"


def as_numpy_argument(a, name: str) -> np.ndarray:
    """A numpy-library argument as an ndarray in native byte order, refusing what would
    lose information silently (a mask) or cannot be an array (ragged nesting)."""
    if isinstance(a, np.ma.MaskedArray):
        raise TypeError(f"{name} is a masked array, and the mask would be ignored: pass "
                        f"{name}.filled(value) to give the masked samples a value, or "
                        f"np.asarray({name}) to drop the mask")
    try:
        a = np.asarray(a)
    except ValueError as exc:
        raise ValueError(f"{name} is not a regular array (nested sequences of unequal "
                         f"lengths?): {exc}") from None
    if a.dtype.kind in "OUSV" or a.dtype.hasobject:
        raise TypeError(f"{name} must hold numbers, got dtype {a.dtype}")
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    return a


def dtype_name(a) -> str:
    """numpy-style dtype name for numpy, torch and cupy arrays ('bfloat16' for torch's)."""
    if library_of(a) == "torch":
        return str(a.dtype).replace("torch.", "")
    return np.asarray(a).dtype.name if library_of(a) == "numpy" else a.dtype.name


def to_numpy(a) -> np.ndarray:
    lib = library_of(a)
    if lib == "torch":
        a = a.detach()
        if str(a.dtype) == "torch.bfloat16":
            a = a.float()
        return a.cpu().numpy()
    if lib == "cupy":
        return a.get()
    return np.asarray(a)


def like(a: np.ndarray, template):
    """``a`` (numpy) converted to the library and device of ``template``."""
    lib = library_of(template)
    if lib == "torch":
        import torch

        return torch.from_numpy(np.ascontiguousarray(a)).to(template.device)
    if lib == "cupy":
        import cupy

        return cupy.asarray(a)
    return a


def flip(a):
    """Reverse every axis (torch has no negative strides, so it copies there)."""
    if library_of(a) == "torch":
        return a.flip(tuple(range(a.ndim)))
    return a[(slice(None, None, -1),) * a.ndim]


def synchronize(a) -> None:
    """Wait for device work that produced ``a`` (no-op on the CPU)."""
    lib = library_of(a)
    if lib == "torch" and a.device.type == "cuda":
        import torch

        torch.cuda.synchronize(a.device)
    elif lib == "cupy":
        import cupy

        cupy.cuda.get_current_stream().synchronize()

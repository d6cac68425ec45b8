"""Array-library plumbing: which library an array belongs to, and conversions.

torch and cupy are never imported here: an array's type is read from its module name, so
a CPU machine never pays for (or fails on) importing cupy.
"""
from __future__ import annotations

import numpy as np

LIBRARIES = ("numpy", "torch", "cupy")


def library_of(a) -> str:
    """'numpy', 'torch' or 'cupy' for an array; TypeError for anything else.

    Python scalars and lists count as numpy (as numpy.asarray would take them).
    """
    module = type(a).__module__.split(".")[0]
    if module == "torch":
        return "torch"
    if module == "cupy":
        return "cupy"
    if isinstance(a, (np.ndarray, np.generic, list, tuple, int, float)):
        return "numpy"
    raise TypeError(f"expected a numpy array, torch tensor or cupy array, got {type(a).__name__}")


def common_library(arrays, names) -> str:
    """The one library all ``arrays`` belong to; a clear error for a mix."""
    libs = {name: library_of(a) for name, a in zip(names, arrays) if a is not None}
    found = set(libs.values())
    if len(found) > 1:
        detail = ", ".join(f"{n} is {lib}" for n, lib in libs.items())
        raise TypeError(f"arrays from different libraries cannot be mixed ({detail}); "
                        "convert them to one of numpy, torch, cupy")
    if "torch" in found:
        devices = {str(a.device) for a in arrays if a is not None}
        if len(devices) > 1:
            raise ValueError(f"tensors on different devices cannot be mixed: {sorted(devices)}")
    return found.pop() if found else "numpy"


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

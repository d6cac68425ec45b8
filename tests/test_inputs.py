"""The bad-input catalogue: bad, edge and hostile input across the library, the command
line and the files convbench reads, each with the outcome it must have.

Every row of ``CATALOGUE`` is ``(id, call, expected)``:

  Ok(check)          the call returns the oracle's answer (refimpl's oracle, scipy.ndimage
                     or a value known by construction; never convbench's own output)
  Refused(word)      TypeError/ValueError whose message names the argument (``word``)
  Warns(word, check) exactly one warning naming the file (``word``), then a correct result
  Exits(code, word)  ``convbench.cli.main`` returns ``code`` and its output names ``word``

``classify`` gives the actual outcome of a row, one of CLASSES; a row passes when that is
the class its expectation calls for. ``python tests/test_inputs.py --counts`` prints the
count per class (set CONVBENCH_TREE=/path/to/tree to measure another checkout of the
project with this catalogue).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

if __name__ == "__main__" and os.environ.get("CONVBENCH_TREE"):
    # measure another checkout: its packages first, and not the editable install's finder
    sys.path.insert(0, os.environ["CONVBENCH_TREE"])
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()
                        and "editable" not in getattr(f, "__name__", "").lower()]

import numpy as np
import pytest
import scipy.ndimage as ndi

import convbench
from convbench import cli
from refimpl import conv as ref_conv
from refimpl import pool as ref_pool
from refimpl.correlate import convolve as ref_convolve
from refimpl.correlate import correlate as ref_correlate

CLASSES = ("correct", "refused-clear", "refused-vague", "silently-wrong", "crash")
RNG = np.random.default_rng(13)


# ---------------------------------------------------------------------------------------
# Expected outcomes
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ok:
    check: Callable          # result -> None when right, else what is wrong
    wanted = "correct"


@dataclass(frozen=True)
class Refused:
    word: str
    types: tuple = (TypeError, ValueError)
    wanted = "refused-clear"


@dataclass(frozen=True)
class Warns:
    word: str
    check: Callable
    wanted = "correct"


@dataclass(frozen=True)
class Exits:
    code: int
    word: str

    @property
    def wanted(self) -> str:
        return "correct" if self.code == 0 else "refused-clear"


def _names(message: str, word: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(word)}(?!\w)", message) is not None


def _as_numpy(y):
    if type(y).__module__.split(".")[0] == "torch":
        return y.detach().cpu().numpy()
    return np.asarray(y)


def close_to(expected, *, dtype=None, rtol=1e-5, scale=None):
    """The result equals ``expected`` (float64) within ``rtol`` of ``scale`` (default:
    max |expected|), with NaN and +-Inf in exactly the same places; ``dtype`` if given."""
    def check(y):
        y = _as_numpy(y)
        want = np.asarray(expected() if callable(expected) else expected)
        if y.shape != want.shape:
            return f"shape {y.shape}, expected {want.shape}"
        if dtype is not None and y.dtype != np.dtype(dtype):
            return f"dtype {y.dtype}, expected {np.dtype(dtype)}"
        yf, wf = y.astype(np.complex128 if np.iscomplexobj(y) else np.float64), want
        if not np.array_equal(np.isnan(yf), np.isnan(wf)):
            return (f"NaN at {int(np.isnan(yf).sum())} places, expected "
                    f"{int(np.isnan(wf).sum())}")
        for part in (np.real, np.imag):
            if not np.array_equal(np.isposinf(part(yf)), np.isposinf(part(wf))) or \
                    not np.array_equal(np.isneginf(part(yf)), np.isneginf(part(wf))):
                return "Inf in other places than the oracle's"
        finite = np.isfinite(wf)
        if not finite.any():
            return None
        s = scale if scale is not None else max(float(np.abs(wf[finite]).max()), 1e-30)
        err = float(np.abs(yf[finite] - wf[finite]).max())
        return None if err <= rtol * s else f"max error {err:.3g} > {rtol:g} * {s:.3g}"
    return check


def exactly(expected, dtype):
    def check(y):
        y = _as_numpy(y)
        want = np.asarray(expected)
        if y.dtype != np.dtype(dtype):
            return f"dtype {y.dtype}, expected {np.dtype(dtype)}"
        if y.shape != want.shape or not np.array_equal(y, want):
            bad = np.argwhere(y != want) if y.shape == want.shape else None
            where = f" first at {tuple(bad[0])}: {y[tuple(bad[0])]!r} != {want[tuple(bad[0])]!r}" \
                if bad is not None and len(bad) else ""
            return "not exactly the expected values" + where
        return None
    return check


def with_dtype(dtype, inner):
    def check(y):
        y = _as_numpy(y)
        if y.dtype != np.dtype(dtype):
            return f"dtype {y.dtype}, expected {np.dtype(dtype)}"
        return inner(y)
    return check


# ---------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------

def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


X = rand(9, 11)
W = rand(3, 3)
X64, W64 = X.astype(np.float64), W.astype(np.float64)
XB = rand(2, 3, 7, 7)           # layer form (N, C, H, W)
WB = rand(4, 3, 3, 3)           # (O, C, kh, kw)
PB = rand(1, 2, 6, 6)           # pooling input


def corr(x, w, **kw):
    return convbench.correlate(x, w, **kw)


def ref(x, w, **kw):
    """refimpl's correlate, in float64."""
    return lambda: ref_correlate(np.asarray(x), np.asarray(w), **kw)


def huge(shape, dtype=np.float32):
    """A read-only view of that shape without its memory: only the shape is real."""
    return np.broadcast_to(np.zeros((), dtype), shape)


def ndi_gaussian(x, sigma, **kw):
    return lambda: ndi.gaussian_filter(np.asarray(x, np.float64), sigma, mode="constant", **kw)


@contextlib.contextmanager
def patched(obj, name, value):
    saved = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, saved)


def small_memory(call, available=1 << 20):
    """Run ``call`` on a machine that has ``available`` bytes free."""
    from convbench import machine

    def run():
        with patched(machine, "available_memory", lambda now=None: available):
            return call()
    return run


def torch_or_skip():
    return pytest.importorskip("torch")


# -- NaN, Inf and exact integers ------------------------------------------------------

X_NAN = rand(64, 64)
X_NAN[20, 37] = np.nan
W15 = rand(15, 15)

X_SPIKE = np.ones((128, 128), np.float32)
X_SPIKE[0, 0] = 1e12
W_NORM = np.full((31, 31), 1 / 961, np.float32)


def far_from_spike(y):
    y = _as_numpy(y)
    region = y[16:113, 16:113]      # windows inside the image that do not reach (0, 0)
    err = float(np.abs(region - 1.0).max())
    return None if err <= 1e-5 else f"|y - 1| = {err:.3g} far from the spike"


W_NAN = rand(3, 3)
W_NAN[0, 2] = np.nan
X_INF = rand(8, 8)
X_INF[4, 4] = np.inf
W_ZERO_TAP = np.abs(rand(3, 3)) + 0.5
W_ZERO_TAP[1, 0] = 0.0

I24 = np.full((4, 4), 2**24 + 1, np.int32)
I28 = RNG.integers(-2**27, 2**27, (12, 12)).astype(np.int64)
K_SMALL_INT = np.array([[1, -2, 1], [3, 0, -1], [2, 1, 1]], np.int64)
U32 = np.full((5, 5), 2**32 - 7, np.uint32)
U32[2, 2] = 2**32 - 1
I62 = np.full((4, 4), 2**62 + 12345, np.int64)


def exact_int_correlation(x, w):
    """Exact integer correlation (same, constant 0) in Python integers."""
    x = x.astype(object)
    k = w.shape[0]
    pad = np.zeros((x.shape[0] + k - 1, x.shape[1] + k - 1), dtype=object)
    pad[k // 2:k // 2 + x.shape[0], k // 2:k // 2 + x.shape[1]] = x
    out = np.zeros(x.shape, dtype=object)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = sum(int(w[a, b]) * pad[i + a, j + b] for a in range(k) for b in range(k))
    return out


# -- more arrays ------------------------------------------------------------------------

W77 = rand(7, 7)
W_EVEN = rand(4, 4)
WT = rand(3, 2, 3, 3)                 # conv_transpose's (C, O/groups, kh, kw)
DY = rand(2, 4, 5, 5)                 # conv(XB, WB)'s output shape
PB_NAN = PB.copy()
PB_NAN[0, 1, 2, 3] = np.nan
X4, W4 = rand(3, 4, 3, 4), rand(2, 3, 1, 2)
W57 = rand(5, 7)

X_BIG_ENDIAN = np.arange(25, dtype=">f4").reshape(5, 5)
X_MASKED = np.ma.masked_array(X, mask=X > 1)


def _int16_big_endian():
    return np.arange(30, dtype=">i2").reshape(5, 6)


# ---------------------------------------------------------------------------------------
# Files: the user choice table, run files, gate baselines
# ---------------------------------------------------------------------------------------

def _tmpdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="convbench-inputs-"))


def with_user_table(text: str | None, calls: int = 2):
    """Call correlate ``calls`` times with a user choice table holding ``text``."""
    def run():
        root = _tmpdir()
        if text is not None:
            (root / "choices.json").write_text(text)
        saved = os.environ.get("CONVBENCH_CACHE")
        os.environ["CONVBENCH_CACHE"] = str(root)
        convbench.plans.clear_cache()   # plans follow a new table within a second; now
        try:
            for _ in range(calls):
                y = convbench.correlate(X, W)
            return y
        finally:
            if saved is None:
                del os.environ["CONVBENCH_CACHE"]
            else:
                os.environ["CONVBENCH_CACHE"] = saved
    return run


def _choice_doc(rows) -> str:
    return json.dumps({"schema": "convbench-choices", "version": 1, "rows": rows})


_GOOD_ROW = {"op": "correlate", "rank": 2, "pixels": 99, "taps": 9, "kernel": [3, 3],
             "separable": False, "dtype": "float32", "border": "constant",
             "ranking": ["shift_add_numpy"]}


def run_file(text: str) -> Path:
    path = _tmpdir() / RUN_NAME
    path.write_text(text)
    return path


def _run_doc(**changes) -> str:
    doc = {"schema": "convbench-run", "version": 1, "created": "20990101T000000Z",
           "suite": "quick", "command": "convbench bench", "machine": {"hostname": "h"},
           "protocol": {}, "rows": [{"case": "c", "candidate": "a", "median": 1.0}]}
    doc.update(changes)
    return json.dumps({k: v for k, v in doc.items() if v is not None})


RUN_NAME = "20990101T000000Z-quick.json"


def empty_frame(frame):
    return None if len(frame) == 0 else f"{len(frame)} rows from a file that holds none"


def load_run(path):
    from convbench import results

    return lambda: results.load_run(path)


def load_frame(path):
    from convbench import results

    return lambda: results.load_frame(path)


def cli_call(*argv):
    return lambda: cli.main(list(argv))


def report_call(path):
    return lambda: cli.main(["report", "--run", str(path), "--output", str(_tmpdir())])


def gate_with_baseline(text: str | None):
    def run():
        path = _tmpdir() / "baseline.json"
        if text is not None:
            path.write_text(text)
        return cli.main(["gate", "--suite", "gate", "--baseline", str(path)])
    return run


def verify_call(*args, **kwargs):
    return lambda: convbench.verify(*args, **kwargs)


# ---------------------------------------------------------------------------------------
# The catalogue
# ---------------------------------------------------------------------------------------

R = Refused
CATALOGUE = [
    # -- correlate / convolve: arrays -------------------------------------------------
    ("corr-plain", lambda: corr(X, W), Ok(close_to(ref(X, W)))),
    ("corr-nested-lists", lambda: corr([[1, 2, 3], [4, 5, 6]], [[0, 1], [1, 0]]),
     Ok(close_to(ref(np.array([[1., 2, 3], [4, 5, 6]]), np.array([[0., 1], [1, 0]]))))),
    ("corr-1d-lists", lambda: corr([1.0, 2.0, 3.0, 4.0], [1.0, -1.0]),
     Ok(close_to(ref(np.array([1., 2, 3, 4]), np.array([1., -1]))))),
    ("corr-ragged-x", lambda: corr([[1, 2], [3]], [[1]]), R("x")),
    ("corr-ragged-w", lambda: corr(X, [[1, 2], [3]]), R("w")),
    ("corr-x-none", lambda: corr(None, W), R("x")),
    ("corr-w-none", lambda: corr(X, None), R("w")),
    ("corr-x-str", lambda: corr("image", W), R("x")),
    ("corr-x-dict", lambda: corr({"a": 1}, W), R("x")),
    ("corr-x-list-of-str", lambda: corr([["a", "b"], ["c", "d"]], W), R("x")),
    ("corr-x-list-with-none", lambda: corr([[1.0, None], [2.0, 3.0]], [[1.0]]), R("x")),
    ("corr-x-scalar", lambda: corr(5.0, [1.0]), R("x")),
    ("corr-x-masked", lambda: corr(X_MASKED, W), R("x")),
    ("corr-w-masked", lambda: corr(X, np.ma.masked_array(W, mask=W > 0)), R("w")),
    ("corr-x-big-endian", lambda: corr(X_BIG_ENDIAN, np.ones((3, 3), np.float32)),
     Ok(close_to(ref(X_BIG_ENDIAN.astype(np.float64), np.ones((3, 3)))))),
    ("corr-w-big-endian", lambda: corr(X, W.astype(">f4")), Ok(close_to(ref(X, W)))),
    ("corr-x-big-endian-int16", lambda: corr(_int16_big_endian(), np.ones((3, 3), np.float32)),
     Ok(close_to(ref(_int16_big_endian().astype(np.int64), np.ones((3, 3)))))),
    ("corr-x-big-endian-float64", lambda: corr(X64.astype(">f8"), W64, border="wrap"),
     Ok(close_to(ref(X64, W64, border="wrap"), dtype=np.float64, rtol=1e-12))),
    ("corr-x-strided-view", lambda: corr(X[::2, ::3], W), Ok(close_to(ref(X[::2, ::3], W)))),
    ("corr-x-fortran-order", lambda: corr(np.asfortranarray(X), W), Ok(close_to(ref(X, W)))),
    ("corr-x-negative-strides", lambda: corr(X[::-1, ::-1], W), Ok(close_to(ref(X[::-1, ::-1], W)))),
    ("corr-x-read-only", lambda: corr(np.broadcast_to(X, X.shape), W), Ok(close_to(ref(X, W)))),
    ("corr-x-matrix", lambda: corr(np.asmatrix(X), W), Ok(close_to(ref(X, W)))),
    ("corr-x-bool", lambda: corr(X > 0, W), R("x")),
    ("corr-x-object", lambda: corr(X.astype(object), W), R("x")),
    ("corr-x-datetime", lambda: corr(np.zeros((4, 4), "datetime64[s]"), W), R("x")),
    ("corr-x-longdouble", lambda: corr(X.astype(np.longdouble), W), R("x")),
    ("corr-x-float16", lambda: corr(X.astype(np.float16), W.astype(np.float16)),
     Ok(close_to(ref(X.astype(np.float16), W.astype(np.float16)), dtype=np.float16, rtol=1e-2))),
    ("corr-x-int64", lambda: corr(np.arange(30).reshape(5, 6), np.ones((3, 3), np.float32)),
     Ok(close_to(ref(np.arange(30).reshape(5, 6), np.ones((3, 3)))))),
    ("corr-x-complex", lambda: corr(X + 1j * X, W64),
     Ok(close_to(ref(X + 1j * X, W64), rtol=1e-6))),
    ("corr-x-empty", lambda: corr(np.zeros((0, 5), np.float32), W), R("x")),
    ("corr-w-empty", lambda: corr(X, np.zeros((3, 0), np.float32)), R("w")),
    ("corr-rank-mismatch", lambda: corr(X, W[0]), R("rank")),
    ("corr-4d", lambda: corr(X4, W4), Ok(close_to(ref(X4, W4)))),
    ("corr-1x1-image", lambda: corr(np.array([[2.0]], np.float32), W), Ok(close_to(ref(np.array([[2.0]]), W)))),
    ("corr-1-sample-reflect", lambda: corr(np.array([3.0]), np.array([1.0, 2.0, 4.0, 1.0, 1.0]),
                                           border="reflect"),
     Ok(close_to(ref(np.array([3.0]), np.array([1.0, 2.0, 4.0, 1.0, 1.0]), border="reflect")))),
    ("corr-wrap-kernel-wider-than-image", lambda: corr(X[:3, :3], W57, border="wrap"),
     Ok(close_to(ref(X[:3, :3], W57, border="wrap")))),
    ("corr-zero-kernel", lambda: corr(X, np.zeros((3, 3), np.float32)), Ok(close_to(np.zeros(X.shape)))),
    # -- correlate: geometry and border -----------------------------------------------
    ("corr-valid-kernel-larger", lambda: corr(X, rand(13, 3), padding="valid"), R("kernel")),
    ("corr-same-kernel-larger", lambda: corr(X[:4, :4], W77), Ok(close_to(ref(X[:4, :4], W77)))),
    ("corr-full-kernel-larger", lambda: corr(X[:4, :4], W77, padding="full"),
     Ok(close_to(ref(X[:4, :4], W77, padding="full")))),
    ("corr-unknown-border", lambda: corr(X, W, border="foo"), R("border")),
    ("corr-border-none", lambda: corr(X, W, border=None), R("border")),
    ("corr-border-alias", lambda: corr(X, W, border="nearest"), Ok(close_to(ref(X, W, border="edge")))),
    ("corr-scipy-reflect-means-numpy", lambda: corr(X, W, border="reflect"),
     Ok(close_to(lambda: ndi.correlate(X64, W64, mode="mirror")))),
    ("corr-unknown-padding", lambda: corr(X, W, padding="same2"), R("padding")),
    ("corr-int-padding", lambda: corr(X, W, padding=3), R("padding")),
    ("corr-origin-out-of-range", lambda: corr(X, W, origin=2), R("origin")),
    ("corr-origin-half", lambda: corr(X, W, origin=0.5), R("origin")),
    ("corr-origin-pair-with-half", lambda: corr(X, W, origin=(1, 0.5)), R("origin")),
    ("corr-origin-true", lambda: corr(X, W, origin=True), R("origin")),
    ("corr-origin-float-integral", lambda: corr(X, W, origin=1.0), R("origin")),
    ("corr-origin-wrong-length", lambda: corr(X, W, origin=(0, 0, 0)), R("origin")),
    ("corr-origin-with-valid", lambda: corr(X, W, padding="valid", origin=1), R("origin")),
    ("corr-origin-numpy-int", lambda: corr(X, W, origin=np.int64(1)),
     Ok(close_to(lambda: ndi.correlate(X64, W64, mode="constant", origin=1)))),
    ("conv-origin-even-kernel", lambda: convbench.convolve(X, W_EVEN, origin=(-1, 1)),
     Ok(close_to(lambda: ref_convolve(X, W_EVEN, origin=(-1, 1))))),
    # -- correlate: cval ---------------------------------------------------------------
    ("corr-cval-1e300-f32", lambda: corr(X, W, cval=1e300), R("cval")),
    ("corr-cval-1e39-f32", lambda: corr(X, W, cval=-1e39), R("cval")),
    ("corr-cval-1e300-f64", lambda: corr(X64, W64, cval=1e300),
     Ok(close_to(ref(X64, W64, cval=1e300), rtol=1e-12))),
    ("corr-cval-7e4-f16", lambda: corr(X.astype(np.float16), W.astype(np.float16), cval=7e4),
     R("cval")),
    ("corr-cval-nan", lambda: corr(X, W, cval=float("nan")), R("cval")),
    ("corr-cval-inf", lambda: corr(X, W, cval=float("inf")), R("cval")),
    ("corr-cval-complex", lambda: corr(X, W, cval=1j), R("cval")),
    ("corr-cval-str", lambda: corr(X, W, cval="0"), R("cval")),
    ("corr-cval-bool", lambda: corr(X, W, cval=True), R("cval")),
    ("corr-cval-none", lambda: corr(X, W, cval=None), R("cval")),
    ("corr-cval-numpy-float", lambda: corr(X, W, cval=np.float32(0.5)),
     Ok(close_to(ref(X, W, cval=0.5)))),
    ("corr-cval-uint8-300", lambda: corr(np.full((5, 5), 200, np.uint8), np.ones((3, 3), np.uint8), cval=300),
     Ok(close_to(ref(np.full((5, 5), 200), np.ones((3, 3)), cval=300.0), dtype=np.float32))),
    # -- correlate: out_dtype ----------------------------------------------------------
    ("corr-out-float33", lambda: corr(X, W, out_dtype="float33"), R("out_dtype")),
    ("corr-out-object", lambda: corr(X, W, out_dtype=object), R("out_dtype")),
    ("corr-out-U8", lambda: corr(X, W, out_dtype="U8"), R("out_dtype")),
    ("corr-out-bool", lambda: corr(X, W, out_dtype=bool), R("out_dtype")),
    ("corr-out-complex", lambda: corr(X, W, out_dtype=np.complex64), R("out_dtype")),
    ("corr-out-int-3", lambda: corr(X, W, out_dtype=3), R("out_dtype")),
    ("corr-out-longdouble", lambda: corr(X, W, out_dtype=np.longdouble), R("out_dtype")),
    ("corr-out-str-int", lambda: corr(X * 100, W, out_dtype="int"),
     Ok(exactly(np.rint(ref_correlate(X * 100, W)).astype(np.int64), np.int64))),
    ("corr-out-uint8-saturates", lambda: corr(np.full((6, 6), 250, np.uint8), np.ones((2, 2), np.uint8),
                                             out_dtype=np.uint8),
     Ok(exactly(np.clip(ref_correlate(np.full((6, 6), 250), np.ones((2, 2))), 0, 255).astype(np.uint8),
                np.uint8))),
    ("corr-out-float16", lambda: corr(X, W, out_dtype="float16"),
     Ok(close_to(ref(X, W), dtype=np.float16, rtol=2e-3))),
    ("corr-out-torch-float32", lambda: corr(X, W, out_dtype=torch_or_skip().float32),
     Ok(close_to(ref(X, W), dtype=np.float32))),
    ("corr-out-torch-uint8", lambda: corr(np.abs(X) * 50, W * 0 + 0.25, out_dtype=torch_or_skip().uint8),
     Ok(exactly(np.clip(np.rint(ref_correlate(np.abs(X) * 50, W * 0 + 0.25)), 0, 255).astype(np.uint8),
                np.uint8))),
    ("corr-out-torch-bfloat16-numpy", lambda: corr(X, W, out_dtype=torch_or_skip().bfloat16),
     R("out_dtype")),
    ("corr-out-bfloat16-str", lambda: corr(X, W, out_dtype="bfloat16"), R("out_dtype")),
    # -- correlate: keywords, algorithm, libraries -------------------------------------
    ("corr-unknown-keyword", lambda: corr(X, W, mode="constant"), R("mode")),
    ("corr-unknown-algorithm", lambda: corr(X, W, algorithm="nope"), R("nope")),
    ("corr-algorithm-int", lambda: corr(X, W, algorithm=3), R("algorithm")),
    ("corr-algorithm-other-op", lambda: corr(X, W, algorithm="strided_numpy"), R("strided_numpy")),
    ("corr-mixed-libraries", lambda: corr(torch_or_skip().from_numpy(X), W), R("w")),
    ("corr-torch-cpu", lambda: corr(torch_or_skip().from_numpy(X), torch_or_skip().from_numpy(W)),
     Ok(close_to(ref(X, W), dtype=np.float32))),
    ("corr-dataframe", lambda: corr(pytest.importorskip("pandas").DataFrame(X64), W64),
     Ok(close_to(ref(X64, W64), rtol=1e-12))),
    # -- correlate: values (NaN, Inf, magnitudes, exact integers) -----------------------
    ("corr-nan-in-x", lambda: corr(X_NAN, W15), Ok(close_to(ref(X_NAN, W15)))),
    ("corr-spike-1e12", lambda: corr(X_SPIKE, W_NORM), Ok(far_from_spike)),
    ("corr-nan-in-w", lambda: corr(X[:8, :8], W_NAN), Ok(close_to(ref(X[:8, :8], W_NAN)))),
    ("corr-inf-in-x", lambda: corr(X_INF, np.abs(W) + 0.1), Ok(close_to(ref(X_INF, np.abs(W) + 0.1)))),
    ("corr-inf-times-zero-tap", lambda: corr(X_INF, W_ZERO_TAP), Ok(close_to(ref(X_INF, W_ZERO_TAP)))),
    ("corr-nan-out-uint8", lambda: corr(X_NAN, W15, out_dtype=np.uint8), R("out_dtype")),
    ("corr-int32-2^24+1", lambda: corr(I24, np.ones((1, 1), np.int32), out_dtype=np.int32),
     Ok(exactly(I24, np.int32))),
    ("corr-int64-28bit", lambda: corr(I28, K_SMALL_INT, out_dtype=np.int64),
     Ok(exactly(exact_int_correlation(I28, K_SMALL_INT).astype(np.int64), np.int64))),
    ("corr-uint32-near-2^32", lambda: corr(U32, np.ones((1, 1), np.uint32), out_dtype=np.uint32),
     Ok(exactly(U32, np.uint32))),
    ("corr-int64-near-2^62", lambda: corr(I62, np.ones((1, 1), np.int64), out_dtype=np.int64),
     Ok(exactly(I62, np.int64))),
    # -- correlate: size ----------------------------------------------------------------
    ("corr-oversize-x", lambda: corr(huge((10**6, 10**6)), W), R("would need")),
    ("corr-oversize-full-kernel", lambda: corr(X, huge((10**6, 10**6)), padding="full"),
     R("would need")),
    ("conv-image-oversize", lambda: convbench.convolve(huge((10**6, 10**6), np.uint8), W),
     R("would need")),
    ("corr-oversize-small-machine", small_memory(lambda: corr(np.zeros((512, 512), np.float32), W)),
     R("would need")),
    ("corr-fits-small-machine", small_memory(lambda: corr(X, W), available=1 << 30),
     Ok(close_to(ref(X, W)))),
    # -- gaussian -------------------------------------------------------------------------
    ("gauss-plain", lambda: convbench.gaussian(X, 1.5), Ok(close_to(ndi_gaussian(X, 1.5), rtol=4e-3))),
    ("gauss-sigma-negative", lambda: convbench.gaussian(X, -1.0), R("sigma")),
    ("gauss-sigma-str", lambda: convbench.gaussian(X, "1"), R("sigma")),
    ("gauss-sigma-none", lambda: convbench.gaussian(X, None), R("sigma")),
    ("gauss-sigma-nan", lambda: convbench.gaussian(X, float("nan")), R("sigma")),
    ("gauss-sigma-inf", lambda: convbench.gaussian(X, float("inf")), R("sigma")),
    ("gauss-sigma-wrong-length", lambda: convbench.gaussian(X, (1.0, 2.0, 3.0)), R("sigma")),
    ("gauss-sigma-zero", lambda: convbench.gaussian(X, 0.0), Ok(close_to(X64))),
    ("gauss-sigma-per-axis", lambda: convbench.gaussian(X64, (0.0, 2.0), algorithm="separable_numpy"),
     Ok(close_to(ndi_gaussian(X64, (0.0, 2.0)), rtol=1e-10))),
    ("gauss-sigma-huge", lambda: convbench.gaussian(X, 1e9), R("would need")),
    ("gauss-truncate-negative", lambda: convbench.gaussian(X, 1.0, truncate=-1.0), R("truncate")),
    ("gauss-truncate-str", lambda: convbench.gaussian(X, 1.0, truncate="4"), R("truncate")),
    ("gauss-x-none", lambda: convbench.gaussian(None, 1.0), R("x")),
    ("gauss-x-masked", lambda: convbench.gaussian(X_MASKED, 1.0), R("x")),
    ("gauss-x-ragged", lambda: convbench.gaussian([[1.0, 2.0], [3.0]], 1.0), R("x")),
    ("gauss-x-big-endian", lambda: convbench.gaussian(X_BIG_ENDIAN, 1.0, algorithm="separable_numpy"),
     Ok(close_to(ndi_gaussian(X_BIG_ENDIAN, 1.0), rtol=1e-5))),
    ("gauss-x-bool", lambda: convbench.gaussian(X > 0, 1.0), R("x")),
    ("gauss-cval-1e300-f32", lambda: convbench.gaussian(X, 1.0, cval=1e300), R("cval")),
    ("gauss-cval-nan", lambda: convbench.gaussian(X, 1.0, cval=float("nan")), R("cval")),
    ("gauss-out-float33", lambda: convbench.gaussian(X, 1.0, out_dtype="float33"), R("out_dtype")),
    ("gauss-out-torch-float64", lambda: convbench.gaussian(X64, 1.0, out_dtype=torch_or_skip().float64,
                                                           algorithm="separable_numpy"),
     Ok(close_to(ndi_gaussian(X64, 1.0), dtype=np.float64, rtol=1e-10))),
    ("gauss-unknown-border", lambda: convbench.gaussian(X, 1.0, border="bogus"), R("border")),
    ("gauss-unknown-keyword", lambda: convbench.gaussian(X, 1.0, order=1), R("order")),
    # -- conv (layer form) -------------------------------------------------------------
    ("conv-plain", lambda: convbench.conv(XB, WB, padding=1),
     Ok(close_to(lambda: ref_conv.conv(XB, WB, padding=1)))),
    ("conv-big-endian", lambda: convbench.conv(XB.astype(">f4"), WB),
     Ok(close_to(lambda: ref_conv.conv(XB, WB)))),
    ("conv-x-none", lambda: convbench.conv(None, WB), R("x")),
    ("conv-x-masked", lambda: convbench.conv(np.ma.masked_array(XB), WB), R("x")),
    ("conv-rank-mismatch", lambda: convbench.conv(XB, WB[0]), R("w")),
    ("conv-x-2d", lambda: convbench.conv(X, W), R("x")),
    ("conv-x-6d", lambda: convbench.conv(rand(1, 1, 2, 2, 2, 2), rand(1, 1, 1, 1, 1, 1)), R("x")),
    ("conv-x-int", lambda: convbench.conv(XB.astype(np.int32), WB), R("x")),
    ("conv-channel-mismatch", lambda: convbench.conv(XB, rand(4, 2, 3, 3)), R("w.shape[1]")),
    ("conv-groups-not-dividing", lambda: convbench.conv(XB, WB, groups=2), R("groups")),
    ("conv-groups-zero", lambda: convbench.conv(XB, WB, groups=0), R("groups")),
    ("conv-groups-float", lambda: convbench.conv(XB, WB, groups=1.0), R("groups")),
    ("conv-groups-bool", lambda: convbench.conv(XB, WB, groups=True), R("groups")),
    ("conv-stride-zero", lambda: convbench.conv(XB, WB, stride=0), R("stride")),
    ("conv-stride-float", lambda: convbench.conv(XB, WB, stride=1.5), R("stride")),
    ("conv-stride-float-in-tuple", lambda: convbench.conv(XB, WB, stride=(1, 2.0)), R("stride")),
    ("conv-stride-bool", lambda: convbench.conv(XB, WB, stride=True), R("stride")),
    ("conv-stride-wrong-length", lambda: convbench.conv(XB, WB, stride=(1,)), R("stride")),
    ("conv-padding-negative", lambda: convbench.conv(XB, WB, padding=-1), R("padding")),
    ("conv-padding-float", lambda: convbench.conv(XB, WB, padding=1.5), R("padding")),
    ("conv-padding-float-pairs", lambda: convbench.conv(XB, WB, padding=((1, 0.5), (0, 0))), R("padding")),
    ("conv-padding-unknown", lambda: convbench.conv(XB, WB, padding="bogus"), R("padding")),
    ("conv-padding-triples", lambda: convbench.conv(XB, WB, padding=((1, 2, 3), (0, 0))), R("padding")),
    ("conv-dilation-zero", lambda: convbench.conv(XB, WB, dilation=0), R("dilation")),
    ("conv-dilation-float", lambda: convbench.conv(XB, WB, dilation=0.5), R("dilation")),
    ("conv-kernel-larger", lambda: convbench.conv(XB, rand(4, 3, 9, 9)), R("w")),
    ("conv-bias-wrong-shape", lambda: convbench.conv(XB, WB, rand(3)), R("bias")),
    ("conv-bias-2d", lambda: convbench.conv(XB, WB, rand(4, 1)), R("bias")),
    ("conv-bias", lambda: convbench.conv(XB, WB, np.arange(4, dtype=np.float32)),
     Ok(close_to(lambda: ref_conv.conv(XB, WB, np.arange(4.0))))),
    ("conv-unknown-border", lambda: convbench.conv(XB, WB, border="bogus"), R("border")),
    ("conv-cval-nan", lambda: convbench.conv(XB, WB, padding=1, cval=float("nan")), R("cval")),
    ("conv-cval-1e300-f32", lambda: convbench.conv(XB, WB, padding=1, cval=1e300), R("cval")),
    ("conv-unknown-keyword", lambda: convbench.conv(XB, WB, mode="same"), R("mode")),
    ("conv-oversize-output", lambda: convbench.conv(rand(1, 1, 8, 8), rand(1, 1, 1, 1), padding=10**6),
     R("would need")),
    ("conv-transpose-plain", lambda: convbench.conv_transpose(XB, WT, stride=2),
     Ok(close_to(lambda: ref_conv.conv_transpose(XB, WT, stride=2)))),
    ("conv-transpose-huge-stride", lambda: convbench.conv_transpose(XB, WT, stride=10**6),
     R("would need")),
    ("conv-transpose-output-padding", lambda: convbench.conv_transpose(XB, WT, stride=2,
                                                                     output_padding=2),
     R("output_padding")),
    ("conv-transpose-padding-same", lambda: convbench.conv_transpose(XB, WT, padding="same"),
     R("padding")),
    ("conv-transpose-channels", lambda: convbench.conv_transpose(XB, rand(4, 2, 3, 3)), R("w.shape[0]")),
    ("conv-transpose-stride-float", lambda: convbench.conv_transpose(XB, WT, stride=2.0),
     R("stride")),
    ("grad-input-shape-none", lambda: convbench.conv_grad_input(DY, WB, None), R("input_shape")),
    ("grad-input-shape-str", lambda: convbench.conv_grad_input(DY, WB, "abc"), R("input_shape")),
    ("grad-input-shape-float", lambda: convbench.conv_grad_input(DY, WB, (2, 3, 7.5, 7)),
     R("input_shape")),
    ("grad-input-dy-mismatch", lambda: convbench.conv_grad_input(rand(2, 4, 6, 5), WB, (2, 3, 7, 7)), R("dy")),
    ("grad-input", lambda: convbench.conv_grad_input(DY, WB, (2, 3, 7, 7)),
     Ok(close_to(lambda: ref_conv.conv_grad_input(DY, WB, (2, 3, 7, 7))))),
    ("grad-weight-shape-none", lambda: convbench.conv_grad_weight(XB, DY, None), R("weight_shape")),
    ("grad-weight-shape-int", lambda: convbench.conv_grad_weight(XB, DY, 4), R("weight_shape")),
    ("grad-weight", lambda: convbench.conv_grad_weight(XB, DY, (4, 3, 3, 3)),
     Ok(close_to(lambda: ref_conv.conv_grad_weight(XB, DY, (4, 3, 3, 3))))),
    ("grad-bias-dy-2d", lambda: convbench.conv_grad_bias(rand(4, 5)), R("dy")),
    ("grad-bias-dy-none", lambda: convbench.conv_grad_bias(None), R("dy")),
    # -- pooling -----------------------------------------------------------------------
    ("maxpool-plain", lambda: convbench.max_pool(PB, 2), Ok(close_to(lambda: ref_pool.max_pool(PB, 2)))),
    ("maxpool-big-endian", lambda: convbench.max_pool(PB.astype(">f8"), 3, 1, 1),
     Ok(close_to(lambda: ref_pool.max_pool(PB, 3, 1, 1), dtype=np.float64))),
    ("maxpool-nan", lambda: convbench.max_pool(PB_NAN, 2), Ok(close_to(lambda: ref_pool.max_pool(PB_NAN, 2)))),
    ("maxpool-kernel-zero", lambda: convbench.max_pool(PB, 0), R("kernel_size")),
    ("maxpool-kernel-float", lambda: convbench.max_pool(PB, 2.5), R("kernel_size")),
    ("maxpool-kernel-bool", lambda: convbench.max_pool(PB, True), R("kernel_size")),
    ("maxpool-kernel-none", lambda: convbench.max_pool(PB, None), R("kernel_size")),
    ("maxpool-kernel-larger", lambda: convbench.max_pool(PB, 9), R("kernel_size")),
    ("maxpool-stride-zero", lambda: convbench.max_pool(PB, 2, 0), R("stride")),
    ("maxpool-padding-too-big", lambda: convbench.max_pool(PB, 3, 1, 2), R("padding")),
    ("maxpool-dilation-zero", lambda: convbench.max_pool(PB, 2, dilation=0), R("dilation")),
    ("maxpool-ceil-mode-str", lambda: convbench.max_pool(PB, 2, ceil_mode="yes"), R("ceil_mode")),
    ("maxpool-ceil-mode-int", lambda: convbench.max_pool(PB, 2, ceil_mode=1), R("ceil_mode")),
    ("maxpool-x-int", lambda: convbench.max_pool(PB.astype(np.int32), 2), R("x")),
    ("maxpool-x-2d", lambda: convbench.max_pool(X, 2), R("x")),
    ("maxpool-x-masked", lambda: convbench.max_pool(np.ma.masked_array(PB), 2), R("x")),
    ("maxpool-unknown-keyword", lambda: convbench.max_pool(PB, 2, foo=1), R("foo")),
    ("avgpool-plain", lambda: convbench.avg_pool(PB, 3, 2, 1, count_include_pad=False),
     Ok(close_to(lambda: ref_pool.avg_pool(PB, 3, 2, 1, count_include_pad=False)))),
    ("avgpool-divisor-zero", lambda: convbench.avg_pool(PB, 2, divisor_override=0), R("divisor_override")),
    ("avgpool-divisor-float", lambda: convbench.avg_pool(PB, 2, divisor_override=1.5), R("divisor_override")),
    ("avgpool-count-include-pad-str", lambda: convbench.avg_pool(PB, 2, count_include_pad="no"),
     R("count_include_pad")),
    ("lppool-plain", lambda: convbench.lp_pool(np.abs(PB), 2, 2),
     Ok(close_to(lambda: ref_pool.lp_pool(np.abs(PB), 2, 2)))),
    ("lppool-norm-zero", lambda: convbench.lp_pool(PB, 0, 2), R("norm_type")),
    ("lppool-norm-str", lambda: convbench.lp_pool(PB, "2", 2), R("norm_type")),
    ("lppool-norm-none", lambda: convbench.lp_pool(PB, None, 2), R("norm_type")),
    ("lppool-norm-nan", lambda: convbench.lp_pool(PB, float("nan"), 2), R("norm_type")),
    ("maxpool-oversize", lambda: convbench.max_pool(huge((10**4, 10**4, 10**3, 10**3)), 2),
     R("would need")),
    # -- convbench.verify ----------------------------------------------------------------
    ("verify-unknown-op", verify_call("nope", lambda x, w, **k: x), R("nope")),
    ("verify-fn-none", verify_call("correlate", None), R("fn")),
    ("verify-fn-int", verify_call("correlate", 42), R("fn")),
    ("verify-unknown-suite", verify_call("correlate", lambda x, w, **k: x, cases="nosuch"), R("nosuch")),
    ("verify-unknown-error-model", verify_call("correlate", lambda x, w, **k: x, error="bogus"), R("error")),
    # -- the command line ----------------------------------------------------------------
    ("cli-unknown-command", cli_call("frobnicate"), Exits(3, "frobnicate")),
    ("cli-unknown-op", cli_call("verify", "--op", "nope"), Exits(3, "nope")),
    ("cli-list-unknown-op", cli_call("list", "--op", "nope"), Exits(3, "nope")),
    ("cli-unknown-suite", cli_call("bench", "--suite", "nosuch", "--no-save"), Exits(3, "nosuch")),
    ("cli-unknown-cases", cli_call("verify", "--cases", "nosuch"), Exits(3, "nosuch")),
    ("cli-unknown-candidate", cli_call("verify", "--candidate", "nope"), Exits(3, "nope")),
    ("cli-threads-not-int", cli_call("bench", "--threads", "many", "--no-save"), Exits(3, "threads")),
    ("cli-threads-negative", cli_call("bench", "--threads", "-2", "--no-save", "--op", "correlate",
                                      "--candidate", "shift_add_numpy", "--filter", "seed-imfilter-3x3"),
     Exits(3, "--threads")),   # the flag itself: a library's own complaint is no refusal
    ("cli-verify-filter-no-match", cli_call("verify", "--op", "correlate", "--filter", "zzz-no-such"),
     Exits(3, "zzz-no-such")),
    ("cli-bench-filter-no-match", cli_call("bench", "--op", "correlate", "--filter", "zzz-no-such",
                                           "--no-save"), Exits(3, "zzz-no-such")),
    ("cli-bad-protocol", cli_call("bench", "--protocol", "slow", "--no-save"), Exits(3, "protocol")),
    ("cli-gate-missing-baseline", gate_with_baseline(None), Exits(3, "baseline")),
    ("cli-gate-baseline-not-json", gate_with_baseline("{not json"), Exits(3, "baseline.json")),
    ("cli-gate-baseline-wrong-schema", gate_with_baseline(json.dumps({"schema": "other"})),
     Exits(3, "baseline.json")),
    ("cli-gate-baseline-list", gate_with_baseline("[1, 2]"), Exits(3, "baseline.json")),
    ("cli-gate-unknown-suite", cli_call("gate", "--suite", "nosuch"), Exits(3, "nosuch")),
    ("cli-gate-few-samples", cli_call("gate", "--samples", "3"), Exits(3, "samples")),
    ("cli-gate-unknown-candidate", cli_call("gate", "--candidate", "nope"), Exits(3, "nope")),
    ("cli-report-missing-run", report_call("/nonexistent/run.json"), Exits(3, "run.json")),
    ("cli-report-run-not-json", lambda: report_call(run_file("{oops"))(), Exits(3, RUN_NAME)),
    ("cli-report-run-wrong-schema", lambda: report_call(run_file(json.dumps({"schema": "x"})))(),
     Exits(3, RUN_NAME)),
    # -- run files: load_run refuses a bad one, load_frame and report skip it with a warning
    ("runs-load-missing-file", load_run("/nonexistent/run.json"), R("/nonexistent/run.json")),
    ("runs-load-not-json", lambda: load_run(run_file("{oops"))(), R(RUN_NAME)),
    ("runs-load-wrong-schema", lambda: load_run(run_file(json.dumps({"schema": "x"})))(), R(RUN_NAME)),
    ("runs-load-json-list", lambda: load_run(run_file("[1, 2]"))(), R(RUN_NAME)),
    ("runs-load-newer-version", lambda: load_run(run_file(_run_doc(version=99)))(), R("version")),
    ("runs-load-rows-missing", lambda: load_run(run_file(_run_doc(rows=None)))(), R("rows")),
    ("runs-load-machine-missing", lambda: load_run(run_file(_run_doc(machine=None)))(), R("machine")),
    ("runs-frame-missing-file", load_frame("/nonexistent/run.json"), Warns("run.json", empty_frame)),
    ("runs-frame-not-json", lambda: load_frame(run_file("{oops"))(), Warns(RUN_NAME, empty_frame)),
    ("runs-frame-json-list", lambda: load_frame(run_file("[1, 2]"))(), Warns(RUN_NAME, empty_frame)),
    ("runs-frame-rows-not-list", lambda: load_frame(run_file(_run_doc(rows="abc")))(),
     Warns(RUN_NAME, empty_frame)),
    ("runs-frame-machine-missing", lambda: load_frame(run_file(_run_doc(machine=None)))(),
     Warns(RUN_NAME, empty_frame)),
    ("runs-frame-good", lambda: load_frame(run_file(_run_doc()))(),
     Ok(lambda frame: None if list(frame["candidate"]) == ["a"] and list(frame["median"]) == [1.0]
        else f"unexpected frame {frame!r}")),
    # -- the user choice table -------------------------------------------------------------
    ("table-not-json", with_user_table("{oops"), Warns("choices.json", close_to(ref(X, W)))),
    ("table-empty-file", with_user_table(""), Warns("choices.json", close_to(ref(X, W)))),
    ("table-json-list", with_user_table("[]"), Warns("choices.json", close_to(ref(X, W)))),
    ("table-wrong-schema", with_user_table(json.dumps({"schema": "x", "rows": []})),
     Warns("choices.json", close_to(ref(X, W)))),
    ("table-rows-not-list", with_user_table(json.dumps({"schema": "convbench-choices", "rows": 3})),
     Warns("choices.json", close_to(ref(X, W)))),
    ("table-row-missing-keys", with_user_table(_choice_doc([{"op": "correlate", "ranking": ["x"]}])),
     Warns("choices.json", close_to(ref(X, W)))),
    ("table-row-wrong-types", with_user_table(_choice_doc([{**_GOOD_ROW, "pixels": "many"}])),
     Warns("choices.json", close_to(ref(X, W)))),
    ("table-ranking-not-list", with_user_table(_choice_doc([{**_GOOD_ROW, "ranking": "fast"}])),
     Warns("choices.json", close_to(ref(X, W)))),
    ("table-zero-taps", with_user_table(_choice_doc([{**_GOOD_ROW, "taps": 0}])),
     Warns("choices.json", close_to(ref(X, W)))),
    ("table-unknown-candidates", with_user_table(_choice_doc([{**_GOOD_ROW, "ranking": ["no_such"]}])),
     Ok(close_to(ref(X, W)))),
    ("table-good", with_user_table(_choice_doc([_GOOD_ROW])), Ok(close_to(ref(X, W)))),
]

# ---------------------------------------------------------------------------------------
# Classifier
# ---------------------------------------------------------------------------------------

def classify(call, expected) -> tuple[str, str]:
    """(actual outcome class, detail) of one row."""
    out, err = io.StringIO(), io.StringIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                result = call()
        except pytest.skip.Exception:
            raise
        except Exception as exc:   # noqa: BLE001 - the catalogue classifies every exception
            return _classify_exception(exc, expected)
    text = out.getvalue() + err.getvalue()
    if isinstance(expected, Exits):
        if not isinstance(result, int):
            return "crash", f"main returned {result!r}"
        if result == expected.code:
            if expected.code == 0 or _names(text, expected.word):
                return expected.wanted, f"exit {result}"
            return "refused-vague", f"exit {result} without naming {expected.word!r}: {text[-300:]!r}"
        if result == 0:
            return "silently-wrong", "exit 0"
        return "refused-vague", f"exit {result}, expected {expected.code}: {text[-300:]!r}"
    if isinstance(expected, Refused):
        return "silently-wrong", "accepted (no error raised)"
    problem = expected.check(result)
    if isinstance(expected, Warns):
        named = [w for w in caught if _names(str(w.message), expected.word)]
        if len(named) != 1:
            return "silently-wrong", (f"{len(named)} warnings naming {expected.word!r} "
                                      f"(of {len(caught)}), expected exactly one")
    if problem:
        return "silently-wrong", problem
    return "correct", ""


def _is_refusal(exc, types) -> bool:
    """One of ``types`` itself, or convbench's own subclass of one. Other subclasses
    (numpy's LinAlgError, json's JSONDecodeError) are internals escaping: crashes."""
    kind = type(exc)
    return kind in types or (isinstance(exc, types)
                             and kind.__module__.split(".")[0] in ("convbench", "refimpl"))


def _classify_exception(exc, expected) -> tuple[str, str]:
    message = f"{type(exc).__name__}: {exc}"[:400]
    types = expected.types if isinstance(expected, Refused) else (TypeError, ValueError)
    if not _is_refusal(exc, types):
        return "crash", message
    if isinstance(expected, Refused):
        if _names(str(exc), expected.word):
            return "refused-clear", message
        return "refused-vague", f"does not name {expected.word!r}: {message}"
    return "refused-vague", f"refused a valid input: {message}"


# ---------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------

def test_catalogue_is_large_and_ids_unique():
    ids = [row[0] for row in CATALOGUE]
    assert len(ids) >= 100
    assert len(set(ids)) == len(ids), [i for i in ids if ids.count(i) > 1]


@pytest.mark.parametrize("call, expected", [row[1:] for row in CATALOGUE],
                         ids=[row[0] for row in CATALOGUE])
def test_input(call, expected):
    actual, detail = classify(call, expected)
    assert actual == expected.wanted, f"{actual}: {detail}"


def test_invalid_table_is_read_once(tmp_path, monkeypatch):
    """An invalid user table warns once, however many calls follow (cached by mtime)."""
    (tmp_path / "choices.json").write_text("{oops")
    monkeypatch.setenv("CONVBENCH_CACHE", str(tmp_path))
    convbench.plans.clear_cache()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            convbench.correlate(X, W)
    assert len([w for w in caught if "choices.json" in str(w.message)]) == 1


def test_oversize_refusal_names_parts_and_memory(no_work):
    """The refusal comes before any work and says what the call needs, part by part."""
    from convbench import machine

    with patched(machine, "available_memory", lambda now=None: 3 * 2**30):
        with pytest.raises(ValueError) as err:
            corr(huge((2**16, 2**15)), np.ones((31, 31), np.float32))
    message = str(err.value)
    # x: 2**31 float32 bytes = 8 GiB; padded by 15 per side; output as x
    for part in ("correlate would need about", "x 8.0 GiB", "padded copy 8.0 GiB", "output 8.0 GiB",
                 "this machine has 3.0 GiB available"):
        assert part in message, message


# ---------------------------------------------------------------------------------------
# Counts per class: python tests/test_inputs.py --counts [-v]
# ---------------------------------------------------------------------------------------

def counts(verbose: bool = False) -> dict[str, int]:
    tally = dict.fromkeys(CLASSES, 0)
    failing = []
    for row_id, call, expected in CATALOGUE:
        try:
            actual, detail = classify(call, expected)
        except pytest.skip.Exception as skip:
            actual, detail = "skipped", str(skip)
        tally[actual] = tally.get(actual, 0) + 1
        if actual != expected.wanted:
            failing.append((row_id, actual, detail))
    if verbose:
        for row_id, actual, detail in failing:
            print(f"  {row_id:40} {actual:15} {detail[:150]}")
    return tally


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", action="store_true", help="print the count per outcome class")
    parser.add_argument("-v", "--verbose", action="store_true", help="list the failing rows")
    args = parser.parse_args()
    print(f"convbench from {Path(convbench.__file__).parent}; {len(CATALOGUE)} rows")
    tally = counts(args.verbose)
    width = max(map(len, tally))
    for name, n in tally.items():
        print(f"{name:{width}}  {n}")

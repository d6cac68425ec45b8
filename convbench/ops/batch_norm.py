"""Batch normalisation ops: batch_norm and batch_norm_grad (torch.nn.functional.batch_norm's
meanings; the oracles in refimpl/batch_norm.py define them).

Signatures are the oracles' own: ``batch_norm(x, running_mean, running_var, weight, bias,
training=False, momentum=0.1, eps=1e-5)`` returns (y, new_running_mean, new_running_var);
``batch_norm_grad(dy, x, running_mean, running_var, weight, training=False, eps=1e-5)``
returns (dx, dweight, dbias). Both ops have several outputs (``SeveralOutputs``): the
candidates are pure functions, and convbench.batch_norm updates the caller's running
statistics in place from what they return. Every array is present at this level:
``fill_arrays`` gives a missing weight and bias (ones, zeros) and, in training, missing
running statistics (zeros, ones, whose update is then dropped).

Error bound ('direct' model of convbench.tolerance, gamma_K(u) * absref, with absref
worked out here from the inputs; the same way as lp_pool's cancelling case). u is the unit
roundoff of the compute type (float32 for float16, bfloat16 and float32 inputs, float64
for float64), g = gamma_K(u) with K = ELEMENT_TERMS, and the per-channel statistics are
accumulated in u_a (float64 for float32 and float64 inputs, as torch's CPU kernels do:
their accumulation type of float is double; float32 for the half floats) in any order.
Per channel, with M values, exact mean mu, biased var v and r = 1/sqrt(v + eps):

  mean          |mu^ - mu| <= E_mu = gamma_{M+1}(u_a) * mean|x|
  variance      |v^ - v|  <= E_v  = 4 gamma_{M+4}(u_a) * mean((|x| + |mu|)**2)
                This covers the two-pass sum of (x - mu^)**2, a sum of squares shifted by
                any block mean (the fused candidate's), Welford/Chan combinations and
                even the one-pass E[x**2] - mu**2: its relative error is
                ~ gamma (1 + (mu/sigma)**2), the variance's cancellation, which grows
                with |mean| / std.
  invstd        |r^ - r| <= dR = 1/2 (v + eps - E_v)**(-3/2) E_v (mean value theorem;
                unbounded when E_v >= v + eps), plus roundings counted in K; r~ = r + dR
  y             |y^ - y| <= g (|w| r~ (|x| + |mu|) + |b|) + |w| r~ E_mu + |w| |x - mu| dR
                The first term is the elementwise rounding of either form, (x - mu) r w
                + b or x * (r w) + (b - mu r w): the latter's two products are as large
                as |x| r |w| and |mu| r |w|, so its error grows with |mu| / std too.
                K = 10 counts the roundings on the longest path (v + eps, sqrt, 1/.,
                r w, x a, mu a, b - mu a, the sum, the statistics rounded to the compute
                type: 9, one spare).
  running mean  |1 - m| |rm| + |m| |mu| scaled by g, plus |m| E_mu
  running var   |1 - m| |rv| + |m| M/(M-1) v scaled by g, plus |m| M/(M-1) E_v
  gradient      per element the computed xhat is within
                e = g r~ (|x| + |mu|) + r~ E_mu + |x - mu| dR of xhat = (x - mu) r;
                S1 = sum dy within E1 = gamma_M(u_a) sum|dy|;
                S2 = sum dy xhat within E2 = gamma_{M+2}(u_a) sum |dy| (|xhat| + e)
                + sum |dy| e; dweight = S2, dbias = S1;
                dx = w r (dy - S1/M - xhat S2/M) within
                g |w| r~ Q + |w| dR Q + |w| r~ (E1 + e (|S2| + E2) + |xhat| E2) / M,
                Q = |dy| + (|S1| + E1)/M + (|xhat| + e)(|S2| + E2)/M.
  eval          the same with mu, v the running statistics and E_mu = E_v = 0 (no
                statistics are computed).

absref is each bound divided by g (the 'direct' model multiplies it back); a float16 or
bfloat16 result adds its one final rounding (convbench.tolerance).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from convbench.cases import batch_norm as cases
from convbench.dtypes import UNIT_ROUNDOFF
from convbench.ops import Asv, Operation
from convbench.tolerance import gamma
from refimpl import batch_norm as ref

ELEMENT_TERMS = 10


def _unit(dtype: str) -> float:
    return UNIT_ROUNDOFF["float64" if dtype == "float64" else "float32"]


def _accumulation_unit(dtype: str) -> float:
    return UNIT_ROUNDOFF["float64" if dtype in ("float32", "float64") else "float32"]


@dataclass(frozen=True)
class BatchNorm(Operation):
    """batch_norm or batch_norm_grad; ``outputs`` names the results in order."""

    outputs: tuple[str, ...] = ()

    @property
    def is_grad(self) -> bool:
        return self.name == "batch_norm_grad"

    # -- signature -------------------------------------------------------------------
    def normalize(self, shapes, dtypes, kwargs) -> dict:
        params = super().normalize(shapes, dtypes, kwargs)
        if isinstance(params.get("training"), np.bool_):
            params["training"] = bool(params["training"])
        for key in ("momentum", "eps"):
            value = params.get(key)
            if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
                params[key] = float(value)
        ref.validate(self.name, shapes, dtypes, **params)
        return params

    def _x_index(self) -> int:
        return self.arrays.index("x")

    def result_dtype(self, spec) -> np.dtype:
        return np.dtype(spec.dtypes[self._x_index()])

    def output_dtypes(self, spec) -> tuple[str, ...]:
        """The dtype of each output: y (dx) x's; the statistics (dweight, dbias) the
        running statistics' (weight's)."""
        x = spec.dtypes[self._x_index()]
        if self.is_grad:
            return (x, spec.dtypes[4], spec.dtypes[4])
        return (x, spec.dtypes[1], spec.dtypes[2])

    # -- geometry --------------------------------------------------------------------
    def output_shape(self, spec) -> tuple[int, ...]:
        return self.output_shapes(spec)[0]

    def output_shapes(self, spec) -> tuple[tuple[int, ...], ...]:
        return ref.validate(self.name, spec.shapes, spec.dtypes, **spec.kwargs)

    def temporaries(self, spec):
        return {}

    def work(self, spec) -> float:
        """Values the oracle's loops visit: x (and dy) about three times."""
        return 3.0 * math.prod(spec.shapes[self._x_index()])

    def terms(self, spec) -> int:
        return ELEMENT_TERMS

    # -- oracle ----------------------------------------------------------------------
    def oracle(self, spec, arrays):
        return getattr(ref, self.name)(*arrays, **spec.kwargs)

    def oracle_at(self, spec, arrays, index):
        return getattr(ref, f"{self.name}_at")(*arrays, index=tuple(index), **self._at_kwargs(spec))

    def _at_kwargs(self, spec) -> dict:
        kw = dict(spec.kwargs)
        if self.is_grad:
            kw.pop("momentum", None)
        return kw

    def reference_outputs(self, spec, arrays, points=None):
        """Per output, (oracle values, error scale absref): the first output's at
        ``points`` (index arrays; the whole output when None), the others whole."""
        with np.errstate(all="ignore"):
            if points is None and self.work(spec) <= 3e6:
                refs = self.oracle(spec, arrays)
            else:
                refs = self._sampled_oracle(spec, arrays, points)
            scales = self._scales(spec, arrays, points)
        return tuple(zip(refs, scales))

    def _sampled_oracle(self, spec, arrays, points):
        kw = spec.kwargs
        x = np.asarray(arrays[self._x_index()], dtype=np.float64)
        stats = ref.channel_statistics(x) if kw["training"] else None
        index = list(zip(*points)) if points is not None else list(np.ndindex(*x.shape))
        if not self.is_grad:
            rm, rv, w, b = (np.asarray(a, dtype=np.float64) for a in arrays[1:])
            y = np.array([ref.batch_norm_at(x, rm, rv, w, b, i, statistics=stats, **kw)
                          for i in index])
            if kw["training"]:
                m, n = kw["momentum"], x.size // x.shape[1]
                new_mean = (1 - m) * rm + m * stats[0]
                new_var = (1 - m) * rv + m * stats[1] * n / (n - 1)
            else:
                new_mean, new_var = rm, rv
            return (y if points is not None else y.reshape(x.shape), new_mean, new_var)
        dy = np.asarray(arrays[0], dtype=np.float64)
        rm, rv, w = (np.asarray(a, dtype=np.float64) for a in arrays[2:])
        mean, var = stats if kw["training"] else (rm, rv)
        sums = ref.gradient_sums(dy, x, mean, 1.0 / np.sqrt(var + kw["eps"]))
        dx = np.array([ref.batch_norm_grad_at(dy, x, rm, rv, w, i, statistics=stats, sums=sums,
                                              **self._at_kwargs(spec)) for i in index])
        return (dx if points is not None else dx.reshape(x.shape), sums[1], sums[0])

    # -- error bound -----------------------------------------------------------------
    def _scales(self, spec, arrays, points):
        """absref of each output (module docstring), float64, in the outputs' order: the
        first output's whole or at ``points``. Channel by channel (a float64 copy of one
        channel at a time: the seed workload's x is 200 MB of float32)."""
        kw = spec.kwargs
        xi = self._x_index()
        x = np.asarray(arrays[xi])
        dy = np.asarray(arrays[0]) if self.is_grad else None
        rm, rv, w = (np.asarray(a, dtype=np.float64) for a in arrays[xi + 1:xi + 4])
        b = None if self.is_grad else np.abs(np.asarray(arrays[4], dtype=np.float64))
        first = np.empty(x.shape if points is None else len(points[0]))
        stats = [np.empty(x.shape[1]), np.empty(x.shape[1])]
        for c in range(x.shape[1]):
            xc = np.moveaxis(x, 1, 0)[c].astype(np.float64)
            dyc = None if dy is None else np.moveaxis(dy, 1, 0)[c].astype(np.float64)
            where = None
            if points is not None:
                mine = points[1] == c
                where = (mine, tuple(p[mine] for i, p in enumerate(points) if i != 1))
            out = self._channel_scales(spec, xc, dyc, rm[c], rv[c], w[c],
                                       None if b is None else b[c], where)
            if points is None:
                np.moveaxis(first, 1, 0)[c] = out[0]
            else:
                first[where[0]] = out[0]
            stats[0][c], stats[1][c] = out[1], out[2]
        return (first, stats[0], stats[1])

    def _channel_scales(self, spec, x, dy, rm, rv, w, b, where):
        """(first output's scale over the channel, or at ``where`` = (mask, indices
        without the channel axis), and the two per-channel scales) for one channel:
        x, dy float64 of shape (N, *spatial)."""
        kw = spec.kwargs
        training, eps = kw["training"], kw["eps"]
        dtype = spec.dtypes[self._x_index()]
        g, u_a, m = gamma(ELEMENT_TERMS, _unit(dtype)), _accumulation_unit(dtype), x.size
        ax = np.abs(x)
        if training:
            mu = x.mean()
            v = float(((x - mu) ** 2).mean())
            e_mu = gamma(m + 1, u_a) * float(ax.mean())
            e_v = 4 * gamma(m + 4, u_a) * float(((ax + abs(mu)) ** 2).mean())
        else:
            mu, v, e_mu, e_v = rm, rv, 0.0, 0.0
        r = 1.0 / math.sqrt(v + eps) if v + eps > 0 else math.inf
        slack = v + eps - e_v
        d_r = 0.0 if e_v == 0 else 0.5 * slack ** -1.5 * e_v if slack > 0 else math.inf
        r_t, aw = r + d_r, abs(w)

        def at(a):
            return a if where is None else a[where[1]]

        # the variance's error may reach v + eps (a constant channel with a tiny eps):
        # invstd is then unbounded, and so are y, dx and dweight (not the statistics)
        unbounded = math.isinf(d_r) and math.isfinite(v)
        if not self.is_grad:
            xs = at(x)
            y = aw * r_t * (np.abs(xs) + abs(mu) + e_mu / g) + b + aw * np.abs(xs - mu) * d_r / g
            y = np.full(xs.shape, math.inf) if unbounded else y
            if not training:
                return y, abs(rm), abs(rv)
            mom = kw["momentum"]
            mean = abs(1 - mom) * abs(rm) + abs(mom) * (abs(mu) + e_mu / g)
            var = abs(1 - mom) * abs(rv) + abs(mom) * m / (m - 1) * (v + e_v / g)
            return y, mean, var
        ady = np.abs(dy)
        xhat = np.abs(x - mu) * r
        e = g * r_t * (ax + abs(mu)) + r_t * e_mu + np.abs(x - mu) * d_r
        s1, s2 = abs(float(dy.sum())), abs(float((dy * (x - mu)).sum()) * r)
        e1 = gamma(m, u_a) * float(ady.sum())
        e2 = gamma(m + 2, u_a) * float((ady * (xhat + e)).sum()) + float((ady * e).sum())
        dweight = math.inf if unbounded else float((ady * xhat).sum()) + e2 / g
        dbias = float(ady.sum()) + e1 / g
        if not training:
            return aw * r * at(ady), dweight, dbias
        ady, xhat, e = at(ady), at(xhat), at(e)
        q = ady + (s1 + e1) / m + (xhat + e) * (s2 + e2) / m
        dx = aw * r_t * q + aw * (d_r * q + r_t * (e1 + e * (s2 + e2) + xhat * e2) / m) / g
        return (np.full(ady.shape, math.inf) if unbounded else dx), dweight, dbias

    def error_scale(self, spec, arrays, points=None):
        return self._scales(spec, arrays, points)[0]


def fill_arrays(x, running_mean, running_var, weight, bias, training):
    """The five arrays of batch_norm with the missing ones given: weight ones, bias zeros
    (exact: y * 1 + 0 = y), and in training running statistics zeros and ones (their
    update is then not returned to anyone). In eval the running statistics are needed:
    ValueError naming them. ``x`` may be numpy or a tensor; the fillers are of its kind,
    device and dtype (float32 for half floats, the dtype torch's layers keep)."""
    missing = [n for n, a in (("running_mean", running_mean), ("running_var", running_var))
               if a is None]
    if missing and not training:
        raise ValueError(f"{' and '.join(missing)} must be given when training=False: eval "
                         "mode normalises with the running statistics")
    shape = getattr(x, "shape", None) if x is not None else None
    if shape is None:
        shape = np.shape(x)       # a list: as numpy will read it
    if len(shape) < 2:
        raise ValueError(f"x must have 2 to 5 axes (N, C, *spatial with 0-3 spatial axes), "
                         f"got shape {tuple(shape)}")
    c = shape[1]
    template = next((a for a in (weight, bias, running_mean, running_var) if a is not None), None)

    def filled(value):
        if type(x).__module__.split(".")[0] == "torch":
            import torch

            dtype = template.dtype if template is not None else (
                torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype)
            return torch.full((c,), value, dtype=dtype, device=x.device)
        dtype = template.dtype if template is not None and hasattr(template, "dtype") else (
            np.float32 if np.asarray(x).dtype == np.float16 else np.asarray(x).dtype)
        return np.full(c, value, dtype=dtype)

    return (x,
            filled(0.0) if running_mean is None else running_mean,
            filled(1.0) if running_var is None else running_var,
            filled(1.0) if weight is None else weight,
            filled(0.0) if bias is None else bias)


def updatable(a, name: str) -> None:
    """A running statistic that training updates in place: None (nothing to update), a
    writable numpy array or a tensor; TypeError/ValueError naming it otherwise."""
    if a is None or type(a).__module__.split(".")[0] == "torch":
        return
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array or a tensor when training=True (it is "
                        f"updated in place), got {type(a).__name__}")
    if not a.flags.writeable:
        raise ValueError(f"{name} is read-only, and training=True updates it in place")


_CANDIDATES = {"fused_numba": "candidates.batch_norm.fused_numba",
               "batch_norm_torch": "candidates.batch_norm.batch_norm_torch"}
_PEERS = frozenset({"batch_norm_torch"})
# "torch" means tensors on a GPU (CPU tensors get the numpy choice)
_PREFERENCE = {"numpy": ("fused_numba", "batch_norm_torch"),
               "torch": ("batch_norm_torch",)}
_COMMON = dict(candidates=_CANDIDATES, peers=_PEERS, preference=_PREFERENCE)

OPS = {
    "batch_norm": BatchNorm(
        "batch_norm", ("x", "running_mean", "running_var", "weight", "bias"),
        (("training", False), ("momentum", 0.1), ("eps", 1e-5)), **_COMMON,
        outputs=("y", "running_mean", "running_var"),
        suites={"small": cases.small_cases, "seed": cases.seed_cases,
                "layers": cases.layer_cases},
        asv=Asv(time=(("layers", 1),), peakmem=1),
    ),
    "batch_norm_grad": BatchNorm(
        "batch_norm_grad", ("dy", "x", "running_mean", "running_var", "weight"),
        (("training", False), ("eps", 1e-5)), **_COMMON,
        outputs=("dx", "dweight", "dbias"),
        suites={"small": cases.small_cases, "seed": cases.seed_cases,
                "layers": cases.layer_cases},
    ),
}

"""Cases of pooling: verification set and pooling workloads (ResNet-50 and VGG-16 pools,
N = 1 on CPU).

Gradients get their dy (shaped like the forward output) first, then x; avg_pool_grad
has only dy and takes the input's shape as ``input_shape``.
"""
from __future__ import annotations

from convbench.cases import Case
from convbench.spec import Spec
from refimpl.geometry import pool_output_shape

INF = float("inf")
_GEOMETRY = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")


def pool_case(op, x_shape, dtype="float32", data=(), strided=False, name="", tags=(),
              **kwargs) -> Case:
    """A case of any pooling op from the INPUT shape x_shape; gradients get a dy of the
    forward output's shape. ``data`` names the recipe of x (dy is always random)."""
    data = tuple(data)
    if op in ("max_pool", "avg_pool", "lp_pool"):
        spec = Spec.make(op, (x_shape,), (dtype,), **kwargs)
        return Case(spec, data, strided, name, tuple(tags))
    geometry = {k: kwargs[k] for k in _GEOMETRY if k in kwargs}
    if op == "lp_pool_grad":
        geometry.update(padding=0, dilation=1)
    if op == "avg_pool_grad":
        geometry["dilation"] = 1
    dy_shape = tuple(x_shape[:2]) + pool_output_shape(x_shape[2:], **geometry)
    if op == "avg_pool_grad":
        spec = Spec.make(op, (dy_shape,), (dtype,), input_shape=tuple(x_shape), **kwargs)
        return Case(spec, (), strided, name, tuple(tags))
    spec = Spec.make(op, (dy_shape, x_shape), (dtype, dtype), **kwargs)
    return Case(spec, ("random",) + (data or ("random",)), strided, name, tuple(tags))


def _max_geometries():
    """(x shape, dtype, data, strided, kwargs) for max_pool and max_pool_grad."""
    return [
        ((2, 3, 9), "float64", (), False, dict(kernel_size=2)),                   # 1-D, stride = k
        ((1, 2, 10), "float32", (), False, dict(kernel_size=3, stride=2, padding=1)),
        ((1, 2, 11), "float64", (), False, dict(kernel_size=3, stride=1, dilation=3)),
        ((1, 1, 5), "float64", (), False, dict(kernel_size=2, stride=1, padding=1,
                                               dilation=6)),               # padding-only window
        ((2, 3, 9, 9), "float32", (), False, dict(kernel_size=3, stride=2, padding=1)),  # stem
        ((1, 2, 8, 7), "float32", (), False, dict(kernel_size=2)),                 # VGG, odd width
        ((1, 2, 7, 8), "float64", (), False, dict(kernel_size=(3, 2), stride=(2, 3),
                                                  padding=(1, 0), dilation=(1, 2))),
        ((1, 2, 5, 5), "float32", (), False, dict(kernel_size=2, ceil_mode=True)),  # kept window
        ((1, 1, 5, 6), "float64", (), False, dict(kernel_size=3, stride=3, padding=1,
                                                  ceil_mode=True)),        # dropped window
        ((1, 2, 7, 7), "float32", (), False, dict(kernel_size=7)),                 # global
        ((1, 2, 4, 5, 6), "float32", (), False, dict(kernel_size=2, stride=(1, 2, 2),
                                                     padding=1)),          # 3-D
        ((1, 1, 5, 6, 7), "float64", (), False, dict(kernel_size=(3, 2, 3), stride=2,
                                                     dilation=(1, 2, 1), ceil_mode=True)),
        ((2, 3, 9, 9), "float32", ("ties",), False, dict(kernel_size=3, stride=2, padding=1)),
        ((1, 2, 8, 9), "float64", ("ties",), False, dict(kernel_size=3, stride=1, padding=1)),
        ((1, 3, 11), "float32", ("ties",), False, dict(kernel_size=4, stride=1, padding=2,
                                                       dilation=2)),
        ((1, 2, 5, 4, 5), "float32", ("ties",), False, dict(kernel_size=3, stride=2,
                                                            padding=1, ceil_mode=True)),
        ((1, 2, 9, 9), "float64", ("nonfinite",), False, dict(kernel_size=3, stride=2,
                                                              padding=1)),
        ((1, 3, 10), "float32", ("nonfinite",), False, dict(kernel_size=2, stride=1)),
        ((1, 2, 9, 9), "float16", (), False, dict(kernel_size=3, stride=2, padding=1)),
        ((2, 2, 10, 9), "float16", ("ties",), False, dict(kernel_size=2, stride=1)),
        ((1, 3, 10, 9), "float32", (), True, dict(kernel_size=3, stride=2, padding=1)),
        ((1, 2, 3, 5, 4), "float64", (), True, dict(kernel_size=2, stride=1)),
    ]


def small_max_cases(op: str) -> list[Case]:
    return [pool_case(op, shape, dtype, data, strided, **kw)
            for shape, dtype, data, strided, kw in _max_geometries()]


def small_avg_cases(op: str) -> list[Case]:
    """1/2/3 axes, ceil_mode windows kept and dropped, count_include_pad both ways,
    divisor_override (negative too), float16/32/64, NaN, strided."""
    geometries = [
        ((2, 3, 9), "float64", (), False, dict(kernel_size=3)),
        ((1, 2, 10), "float32", (), False, dict(kernel_size=3, stride=2, padding=1)),
        ((1, 2, 10), "float32", (), False, dict(kernel_size=3, stride=2, padding=1,
                                                count_include_pad=False)),
        ((1, 1, 6), "float64", (), False, dict(kernel_size=4, stride=3, padding=2,
                                               ceil_mode=True)),           # kept, beyond padding
        ((1, 1, 5), "float64", (), False, dict(kernel_size=3, stride=3, padding=1,
                                               ceil_mode=True)),           # dropped window
        ((1, 2, 7), "float32", (), False, dict(kernel_size=2, divisor_override=3)),  # 1-D override
        ((2, 3, 9, 9), "float32", (), False, dict(kernel_size=3, stride=2, padding=1)),
        ((2, 3, 9, 9), "float32", (), False, dict(kernel_size=3, stride=2, padding=1,
                                                  count_include_pad=False)),
        ((1, 2, 7, 8), "float64", (), False, dict(kernel_size=(3, 2), stride=(2, 1),
                                                  padding=(1, 1), ceil_mode=True,
                                                  count_include_pad=False)),
        ((1, 2, 5, 6), "float32", (), False, dict(kernel_size=2, stride=2, padding=1,
                                                  ceil_mode=True)),
        ((1, 2, 6, 6), "float64", (), False, dict(kernel_size=3, divisor_override=-4)),
        ((1, 2, 6, 7), "float32", (), False, dict(kernel_size=2, stride=1, padding=1,
                                                  divisor_override=2)),
        ((1, 4, 7, 7), "float32", (), False, dict(kernel_size=7)),                 # global
        ((1, 2, 4, 5, 6), "float32", (), False, dict(kernel_size=(2, 3, 2), stride=(1, 2, 2),
                                                     padding=1)),          # 3-D
        ((1, 1, 5, 6, 7), "float64", (), False, dict(kernel_size=3, stride=2, padding=1,
                                                     ceil_mode=True, count_include_pad=False,
                                                     divisor_override=None)),
        ((1, 2, 2, 5, 6), "float32", (), False, dict(kernel_size=(3, 3, 2), padding=(1, 1, 0),
                                                     stride=1)),           # axis < kernel (3-D)
        ((1, 2, 4, 4, 5), "float64", (), False, dict(kernel_size=2, divisor_override=5)),
        ((1, 2, 9, 9), "float64", ("nonfinite",), False, dict(kernel_size=3, stride=2,
                                                              padding=1)),
        ((1, 2, 9, 9), "float16", (), False, dict(kernel_size=3, stride=2, padding=1)),
        ((1, 2, 14, 14), "float16", (), False, dict(kernel_size=7)),
        ((1, 3, 10, 9), "float32", (), True, dict(kernel_size=3, stride=2, padding=1,
                                                  ceil_mode=True)),
        ((1, 2, 9, 9), "float32", ("ties",), False, dict(kernel_size=2, stride=1, padding=1)),
    ]
    return [pool_case(op, shape, dtype, data, strided, **kw)
            for shape, dtype, data, strided, kw in geometries]


def small_lp_cases(op: str) -> list[Case]:
    """norm_type 1, 2, 3, inf (and -inf, 1.5), 1/2/3 axes, ceil_mode, float16/32/64,
    NaN, strided. p = 3 runs on positive data ('gauss') and on signed data, where the
    power sum can cancel."""
    geometries = [
        ((2, 3, 9), "float64", (), False, dict(norm_type=2, kernel_size=3)),
        ((1, 2, 10), "float32", (), False, dict(norm_type=1, kernel_size=3, stride=2,
                                                ceil_mode=True)),
        ((1, 2, 9, 9), "float32", (), False, dict(norm_type=2, kernel_size=3, stride=2)),
        ((1, 2, 9, 8), "float64", (), False, dict(norm_type=1, kernel_size=(3, 2), stride=1)),
        ((1, 2, 9, 9), "float32", ("gauss3",), False, dict(norm_type=3, kernel_size=2,
                                                           ceil_mode=True)),
        ((1, 2, 8, 7), "float64", ("gauss3",), False, dict(norm_type=3, kernel_size=3,
                                                           stride=2)),
        ((1, 2, 8, 8), "float64", (), False, dict(norm_type=3, kernel_size=2)),   # signed
        ((1, 2, 8, 8), "float32", ("gauss2",), False, dict(norm_type=1.5, kernel_size=2,
                                                           stride=1)),
        ((1, 2, 9, 9), "float32", (), False, dict(norm_type=INF, kernel_size=3, stride=2,
                                                  ceil_mode=True)),
        ((1, 2, 9, 9), "float32", ("ties",), False, dict(norm_type=INF, kernel_size=3,
                                                         stride=2)),
        ((1, 2, 8, 9), "float64", ("ties",), False, dict(norm_type=-INF, kernel_size=2,
                                                         stride=1)),
        ((1, 2, 4, 5, 6), "float32", (), False, dict(norm_type=2, kernel_size=2,
                                                     stride=(1, 2, 2), ceil_mode=True)),
        ((1, 1, 4, 5, 6), "float64", ("ties",), False, dict(norm_type=INF, kernel_size=(2, 3, 2))),
        ((1, 2, 9, 9), "float64", ("nonfinite",), False, dict(norm_type=2, kernel_size=3,
                                                              stride=2)),
        ((1, 2, 9, 9), "float16", (), False, dict(norm_type=2, kernel_size=3, stride=2)),
        ((1, 2, 8, 8), "float16", ("gauss3",), False, dict(norm_type=3, kernel_size=2)),
        ((1, 3, 10, 9), "float32", (), True, dict(norm_type=2, kernel_size=3, stride=2,
                                                  ceil_mode=True)),
    ]
    return [pool_case(op, shape, dtype, data, strided, **kw)
            for shape, dtype, data, strided, kw in geometries]


def bfloat16_cases(op: str) -> list[Case]:
    """bfloat16 tensors (numpy has none: kept out of small, whose cases numpy functions
    take), verified like float16: float32 accumulation, one final rounding (u = 2^-8);
    max exact. Ties, ceil_mode, count_include_pad, divisor_override, p = 2 and 3, 1-3 axes."""
    family = op.replace("_grad", "")
    geometries = {
        "max_pool": [
            ((1, 2, 9, 9), (), False, dict(kernel_size=3, stride=2, padding=1)),
            ((2, 2, 10, 9), ("ties",), False, dict(kernel_size=2, stride=1)),
            ((1, 3, 11), (), False, dict(kernel_size=4, stride=1, padding=2, dilation=2)),
            ((1, 2, 5, 4, 5), (), True, dict(kernel_size=3, stride=2, padding=1,
                                             ceil_mode=True)),
        ],
        "avg_pool": [
            ((1, 2, 9, 9), (), False, dict(kernel_size=3, stride=2, padding=1,
                                           count_include_pad=False)),
            ((1, 2, 14, 14), (), False, dict(kernel_size=7)),
            ((1, 2, 10), (), False, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
            ((1, 2, 6, 7), (), False, dict(kernel_size=2, stride=1, padding=1,
                                           divisor_override=3)),
            ((1, 2, 4, 5, 6), (), True, dict(kernel_size=2, stride=(1, 2, 2), padding=1)),
        ],
        "lp_pool": [
            ((1, 2, 9, 9), (), False, dict(norm_type=2, kernel_size=3, stride=2)),
            ((1, 2, 8, 8), ("gauss3",), False, dict(norm_type=3, kernel_size=2)),
            ((1, 2, 10), (), False, dict(norm_type=1, kernel_size=3, stride=2, ceil_mode=True)),
            ((1, 2, 4, 5, 6), (), False, dict(norm_type=2, kernel_size=2, stride=(1, 2, 2))),
        ],
    }[family]
    return [pool_case(op, shape, "bfloat16", data, strided, **kw)
            for shape, data, strided, kw in geometries]


def quick_pool_cases(op: str = "max_pool") -> list[Case]:
    return [pool_case(op, (1, 64, 112, 112), "float32", kernel_size=3, stride=2, padding=1,
                      name="resnet-stem-maxpool")]


def layer_pool_cases(op: str) -> list[Case]:
    """The ResNet-50 and VGG-16 pooling shapes with N = 1 (CPU), forward and gradient."""
    if op in ("max_pool", "max_pool_grad"):
        return [
            pool_case(op, (1, 64, 112, 112), "float32", kernel_size=3, stride=2, padding=1,
                      name="resnet-stem-maxpool"),
            pool_case(op, (1, 64, 224, 224), "float32", kernel_size=2, stride=2,
                      name="vgg-maxpool-224"),
            pool_case(op, (1, 512, 14, 14), "float32", kernel_size=2, stride=2,
                      name="vgg-maxpool-14"),
        ]
    return [pool_case(op, (1, 2048, 7, 7), "float32", kernel_size=7, name="global-avgpool")]

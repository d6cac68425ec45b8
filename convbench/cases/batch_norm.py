"""Cases of batch normalisation: the verification set, the seed-batchnorm workload and
layer shapes (ResNet-50's BatchNorm2d inputs, a BatchNorm1d of a classifier).

Arrays: batch_norm (x, running_mean, running_var, weight, bias); batch_norm_grad (dy, x,
running_mean, running_var, weight). Running variances are positive; ``data`` names x's
recipe ("offset": |mean| / std ~ 1000, "narrow": a variance below eps, "nonfinite").
Channels-last inputs are a layout, not values: tests/test_batch_norm.py passes them.
"""
from __future__ import annotations

from convbench.cases import Case
from convbench.spec import Spec


def batch_norm_case(op, x_shape, dtype="float32", data="random", strided=False, name="",
                    tags=(), dy_data="random", **kwargs) -> Case:
    """A case of batch_norm or batch_norm_grad on x of ``x_shape`` (all arrays ``dtype``);
    ``data`` fills x, ``dy_data`` the gradient's dy."""
    c = (x_shape[1],)
    if op == "batch_norm":
        shapes = (x_shape, c, c, c, c)
        recipes = (data, "random", "positive", "random", "random")
    else:
        shapes = (x_shape, x_shape, c, c, c)
        recipes = (dy_data, data, "random", "positive", "random")
        kwargs.pop("momentum", None)
    spec = Spec.make(op, shapes, (dtype,) * len(shapes), **kwargs)
    return Case(spec, recipes, strided, name, tuple(tags))


# (x shape, dtype, data, strided, keywords)
_SMALL = [
    ((2, 1), "float64", "random", False, dict(training=True)),        # N * space = 2, C = 1
    ((1, 2, 2), "float32", "random", False, dict(training=True)),     # N = 1, L = 2
    ((4, 3), "float32", "random", False, dict(training=True, momentum=0.5)),   # BatchNorm1d
    ((3, 2, 5), "float64", "random", False, dict(training=True, momentum=0.3)),
    ((2, 3, 4, 5), "float32", "random", False, dict(training=True, eps=0.5)),
    ((2, 2, 3, 4, 3), "float64", "random", False, dict(training=True)),  # 3 spatial axes
    ((3, 2, 4, 4), "float32", "random", False, dict()),                 # eval
    ((2, 3, 5), "float64", "random", False, dict(eps=0.25)),            # eval
    ((5, 2), "float32", "random", False, dict()),                       # eval, (N, C)
    ((4, 2, 3, 3), "float32", "offset", False, dict(training=True)),    # |mean|/std ~ 1e3
    ((4, 2, 3, 3), "float64", "offset", False, dict(training=True)),
    ((5, 3, 4), "float32", "narrow", False, dict(training=True)),       # var < eps
    ((3, 2, 8), "float64", "narrow", False, dict(training=True, eps=1e-3, momentum=0.9)),
    ((2, 2, 4, 4), "float16", "random", False, dict(training=True)),
    ((3, 2, 5), "float16", "random", False, dict()),
    ((2, 3, 4, 4), "float32", "random", True, dict(training=True)),    # non-contiguous
    ((3, 2, 3, 5), "float64", "random", True, dict()),
    ((2, 3, 6), "float32", "nonfinite", False, dict(training=True)),
    ((2, 3, 6), "float64", "nonfinite", False, dict()),
]


def small_cases(op: str) -> list[Case]:
    cases = [batch_norm_case(op, shape, dtype, data, strided, **kw)
             for shape, dtype, data, strided, kw in _SMALL]
    if op == "batch_norm_grad":     # NaN and Inf in dy, in training and in eval
        cases += [batch_norm_case(op, (3, 2, 5), "float32", dy_data="nonfinite", training=True),
                  batch_norm_case(op, (3, 2, 5), "float64", dy_data="nonfinite")]
    return cases


def seed_cases(op: str) -> list[Case]:
    """seed-batchnorm: N = 10, C = 100, 224x224 float32, training (forward and gradient)."""
    return [batch_norm_case(op, (10, 100, 224, 224), "float32", name="seed-batchnorm",
                            tags=("large",), training=True)]


def layer_cases(op: str) -> list[Case]:
    """ResNet-50's BatchNorm2d inputs at N = 8 (layer1, layer3), in training and eval, and
    a BatchNorm1d on (256, 1024)."""
    return [batch_norm_case(op, (8, 64, 56, 56), "float32", name="R-bn-layer1", training=True),
            batch_norm_case(op, (8, 256, 14, 14), "float32", name="R-bn-layer3", training=True),
            batch_norm_case(op, (8, 64, 56, 56), "float32", name="R-bn-layer1-eval"),
            batch_norm_case(op, (256, 1024), "float32", name="bn1d-1024", training=True)]

"""Cases of the layer form: verification set and network-layer workloads.

small    verification (each oracle computed whole: tiny shapes): 1-3 spatial axes, every
         padding form ('same' with stride 1, 2 and 3), stride phases, dilation, groups
         (depthwise, C = 1), bias, every border (padding wider than the input included),
         float64/float32/float16, non-contiguous inputs, a kernel as large as the padded input
bfloat16 verification of bfloat16 tensors (numpy has no bfloat16, so a function taking
         numpy arrays cannot be given these: they are kept out of small): every op, 1-3
         spatial axes, bias, 'same' with stride, borders, a non-contiguous input
quick    seed-multifilter and DeepBench D4 at N = 1
layers   the network layers (DeepBench, ResNet-50, VGG-16, convnet-benchmarks; CONTRIBUTING.md,
         "Workloads") at N = 1 (the id carries N through the shape), forward
         conv plus the input and weight gradients of four of them
seed     seed-multifilter, seed-grad-kernel, the seed-mnist-cnn conv layers at N = 100
"""
from __future__ import annotations

from convbench.cases import Case, make_case
from convbench.spec import Spec

BORDERS = ("constant", "edge", "symmetric", "reflect", "wrap")
GRAD_OPS = ("conv_grad_input", "conv_grad_weight")


def layer_case(op, x_shape, w_shape, dtype="float32", bias=False, data=(), strided=False,
               name="", tags=(), **kwargs) -> Case:
    """A case of ``op`` described by the forward layer: x (N, C, *s), w (O, C/groups, *k).

    conv / conv_transpose take (x, w[, bias]) as given (conv_transpose's w is (C, O/groups,
    *k)); conv_grad_input gets (dy, w) and input_shape, conv_grad_weight (x, dy) and
    weight_shape, conv_grad_bias dy, with dy of the forward conv's output shape.
    """
    if op in ("conv", "conv_transpose"):
        shapes = [x_shape, w_shape]
        if bias:
            out_channels = w_shape[0] if op == "conv" else w_shape[1] * kwargs.get("groups", 1)
            shapes.append((out_channels,))
        return make_case(op, shapes, dtype, data, strided, name, tags, **kwargs)
    forward = Spec.make("conv", (x_shape, w_shape), (dtype, dtype), **kwargs)
    dy = forward.output_shape()
    if op == "conv_grad_input":
        return make_case(op, (dy, w_shape), dtype, data, strided, name, tags,
                         input_shape=tuple(x_shape), **kwargs)
    if op == "conv_grad_weight":
        return make_case(op, (x_shape, dy), dtype, data, strided, name, tags,
                         weight_shape=tuple(w_shape), **kwargs)
    if op == "conv_grad_bias":
        return make_case(op, (dy,), dtype, data, strided, name, tags)
    raise ValueError(f"unknown layer op {op!r}")


# ---------------------------------------------------------------------------------------
# small: verification
# ---------------------------------------------------------------------------------------

def _geometry_cases(op):
    """conv's padding / stride / dilation / groups / dtype mix (forward and gradients)."""
    c = []
    add = lambda *a, **k: c.append(layer_case(op, *a, **k))  # noqa: E731
    bias = op == "conv"
    # 1 spatial axis
    add((2, 3, 9), (4, 3, 3), "float64", bias=bias, padding=1)
    add((1, 2, 8), (3, 2, 4), "float64", padding="same")                  # even kernel
    add((2, 2, 8), (2, 2, 3), "float32", padding="same", stride=2)        # ceil(8/2)
    add((1, 2, 7), (2, 2, 3), "float64", padding="same", stride=3)        # odd size, stride 3
    add((1, 2, 11), (3, 2, 3), "float64", stride=3)                       # stride phases
    add((1, 2, 10), (2, 2, 3), "float32", dilation=2, padding=2)
    add((1, 4, 9), (4, 2, 3), "float64", bias=bias, groups=2, padding=1)
    add((1, 4, 8), (4, 1, 3), "float32", groups=4, padding=1)             # depthwise
    add((1, 1, 6), (2, 1, 6), "float64")                                  # kernel = input
    add((1, 2, 5), (2, 2, 3), "float64", padding=((0, 3),))               # per-side pair
    add((1, 1, 7), (1, 1, 1), "float64", bias=bias)                       # C = O = 1, 1 tap
    # 2 spatial axes
    add((2, 3, 6, 5), (4, 3, 3, 3), "float32", bias=bias, padding=1)
    add((1, 2, 7, 6), (3, 2, 3, 2), "float64", padding=(1, 0))            # per-axis tuple
    add((1, 2, 6, 7), (2, 2, 3, 3), "float32", padding=((1, 0), (2, 1)))  # per-side pairs
    add((1, 2, 8, 7), (2, 2, 3, 3), "float32", bias=bias, padding="same", stride=2)
    add((1, 2, 7, 7), (2, 2, 3, 3), "float64", padding="same", stride=3)
    add((1, 2, 9, 8), (2, 2, 3, 3), "float64", stride=(2, 3))             # phases per axis
    add((1, 2, 9, 9), (2, 2, 3, 3), "float32", dilation=2, padding=2)
    add((1, 2, 8, 8), (3, 2, 2, 3), "float64", dilation=(2, 1), stride=(1, 2), padding="same")
    add((1, 4, 6, 6), (6, 2, 3, 3), "float32", bias=bias, groups=2)
    add((2, 3, 6, 6), (3, 1, 3, 3), "float32", groups=3, padding=1)       # depthwise
    add((1, 3, 6, 6), (6, 1, 3, 3), "float64", groups=3, padding=1)       # depth multiplier 2
    add((1, 1, 8, 8), (2, 1, 3, 3), "float32", padding=1)                 # C = 1
    add((1, 2, 4, 5), (2, 2, 6, 7), "float64", padding=1)                 # kernel = padded
    if op == "conv":   # kernel area 64: filter2D's DFT path (the 'fft' error model)
        add((1, 2, 10, 10), (2, 2, 8, 8), "float32", padding="same")
    add((1, 3, 8, 8), (4, 3, 3, 3), "float16", bias=bias, padding=1)
    add((1, 2, 8, 7), (3, 2, 3, 3), "float16", padding=2, border="reflect")
    add((1, 2, 7, 6), (3, 2, 3, 3), "float32", bias=bias, padding=1, strided=True)
    add((1, 2, 7, 6), (2, 2, 3, 3), "float64", padding=(2, 1), border="edge", strided=True)
    # 3 spatial axes
    add((1, 2, 4, 5, 3), (3, 2, 2, 3, 2), "float64", bias=bias, padding=(1, 0, 1))
    add((1, 2, 5, 4, 4), (2, 1, 3, 3, 3), "float32", groups=2, stride=2, padding="same")
    add((1, 2, 5, 5, 5), (2, 2, 2, 2, 2), "float64", dilation=2)
    add((1, 2, 4, 4, 4), (2, 2, 3, 3, 3), "float16", padding=1)
    # NaN and Inf in the activations (0 * Inf, Inf - Inf): placed as IEEE sums place them
    add((2, 3, 6, 5), (4, 3, 3, 3), "float64", bias=bias, padding=1, data=("nonfinite",))
    add((1, 2, 7, 7), (3, 2, 3, 3), "float32", padding="same", stride=2, border="reflect",
        data=("infpair",))
    return c


def _border_cases(op):
    c = []
    add = lambda *a, **k: c.append(layer_case(op, *a, **k))  # noqa: E731
    bias = op == "conv"
    for border in BORDERS:
        add((1, 2, 6, 5), (3, 2, 3, 3), "float64", bias=bias, padding=((2, 1), (1, 2)),
            border=border, cval=1.5)
        add((1, 2, 3, 2), (2, 2, 3, 3), "float64", padding=4, border=border, cval=-2.0)  # wide
        add((1, 2, 4), (2, 2, 3), "float64", padding=((5, 6),), border=border)         # wide 1-D
        add((1, 2, 7, 6), (2, 2, 3, 3), "float32", padding="same", stride=2, border=border)
        add((1, 4, 5, 5), (4, 2, 3, 3), "float32", groups=2, padding=2, dilation=(1, 2),
            border=border, cval=0.5)
        add((1, 2, 4, 3, 4), (2, 2, 3, 2, 3), "float32", padding=1, border=border)
        add((1, 2, 6), (2, 2, 3), "float64", padding=2, stride=2, border=border)
    return c


def small_conv_cases(op="conv"):
    return _geometry_cases(op) + _border_cases(op)


def small_grad_cases(op):
    return _geometry_cases(op) + _border_cases(op)


def small_transpose_cases(op="conv_transpose"):
    c = []
    add = lambda *a, **k: c.append(layer_case(op, *a, **k))  # noqa: E731
    add((2, 3, 4), (3, 2, 3), "float64", bias=True, stride=2, padding=1, output_padding=1)
    add((1, 3, 5), (3, 2, 2), "float32", groups=3, dilation=2)
    add((1, 2, 3), (2, 1, 3), "float64", groups=2, padding=1, output_padding=2, dilation=3)
    add((1, 2, 6), (2, 2, 3), "float64", stride=3, output_padding=2)        # stride phases
    add((2, 2, 3, 4), (2, 3, 3, 2), "float64", stride=(2, 3), padding=(1, 0),
        output_padding=(1, 2), dilation=(1, 2))
    add((1, 4, 4, 3), (4, 1, 3, 3), "float32", bias=True, groups=2, stride=2, padding=2)
    add((1, 3, 4, 4), (3, 1, 3, 3), "float32", groups=3, stride=2)          # depthwise
    add((1, 3, 5, 5), (3, 2, 3, 3), "float16", bias=True, stride=2, padding=1, output_padding=1)
    add((1, 2, 4, 3), (2, 2, 2, 2), "float32", stride=2, strided=True)
    add((1, 1, 5, 5), (1, 1, 3, 3), "float64", stride=3)                    # C = O = 1
    add((1, 2, 2, 3, 2), (2, 2, 2, 2, 3), "float64", bias=True, groups=2, stride=(2, 1, 2),
        padding=(0, 1, 1), output_padding=(1, 0, 0))
    add((1, 2, 3, 3, 3), (2, 2, 2, 2, 2), "float16", stride=2)
    add((1, 2, 5, 4), (2, 3, 3, 3), "float64", bias=True, stride=2, data=("nonfinite",))
    return c


def small_bias_cases(op="conv_grad_bias"):
    return [make_case(op, [shape], dtype, strided=strided) for shape, dtype, strided in (
        ((2, 3, 7), "float64", False),
        ((1, 4, 5, 6), "float32", False),
        ((3, 2, 4, 5), "float32", True),
        ((2, 3, 6, 6), "float16", False),
        ((1, 2, 3, 4, 3), "float64", False),
        ((1, 1, 1), "float64", False),
    )] + [make_case(op, [(2, 3, 5, 5)], "float64", data=("nonfinite",))]


def bfloat16_cases(op):
    """bfloat16 tensors, verified like float16: float32 accumulation and one final rounding
    (u = 2^-8; convbench/tolerance.py). Only candidates taking torch tensors run them."""
    c = []
    add = lambda *a, **k: c.append(layer_case(op, *a, **k))  # noqa: E731
    if op == "conv_transpose":
        add((1, 3, 5, 5), (3, 2, 3, 3), "bfloat16", bias=True, stride=2, padding=1,
            output_padding=1)
        add((1, 2, 4), (2, 2, 3), "bfloat16", stride=2, dilation=2)
        add((1, 2, 3, 3, 3), (2, 2, 2, 2, 2), "bfloat16", stride=2, strided=True)
        return c
    if op == "conv_relu":
        return [Case(Spec.make(op, c.spec.shapes, c.spec.dtypes, **c.spec.kwargs), c.data,
                     c.strided) for c in bfloat16_cases("conv")]
    if op == "conv_grad_bias":
        return [make_case(op, [(2, 3, 6, 6)], "bfloat16"),
                make_case(op, [(3, 2, 4, 5)], "bfloat16", strided=True)]
    bias = op == "conv"
    add((1, 3, 8, 8), (4, 3, 3, 3), "bfloat16", bias=bias, padding=1)
    add((1, 16, 6, 5), (4, 16, 3, 3), "bfloat16", bias=bias, padding="same", stride=2,
        border="symmetric")                                    # K = 144 terms
    add((1, 4, 9), (4, 2, 3), "bfloat16", groups=2, dilation=2, padding=2, border="wrap")
    add((1, 2, 6, 5), (3, 2, 3, 3), "bfloat16", padding=((2, 1), (1, 2)), border="constant",
        cval=1.5)
    add((1, 2, 4, 4, 4), (2, 2, 3, 3, 3), "bfloat16", padding=1, border="edge", strided=True)
    return c


# ---------------------------------------------------------------------------------------
# Workloads (CONTRIBUTING.md, "Workloads")
# ---------------------------------------------------------------------------------------

def seed_multifilter(op="conv"):
    return layer_case(op, (1, 128, 32, 32), (256, 128, 3, 3), "float32", padding=1,
                      name="seed-multifilter")


# DeepBench (D), ResNet-50 (R), VGG-16 (V), convnet-benchmarks (S): (C, H, W, O, R, S,
# stride, padding). N is 1 here (2-core CPU machines); the GPU suite below uses full batches.
LAYERS = {
    "D1": (1, 161, 700, 32, 5, 20, 2, 0),
    "D3": (1, 48, 480, 16, 3, 3, 1, 1),
    "D4": (64, 6, 60, 128, 3, 3, 1, 1),
    "D5": (3, 108, 108, 64, 3, 3, 2, 1),
    "D6": (128, 27, 27, 128, 3, 3, 1, 1),
    "D7": (3, 224, 224, 64, 7, 7, 2, 3),
    "D8": (192, 28, 28, 32, 5, 5, 1, 2),
    "D9": (832, 7, 7, 256, 1, 1, 1, 0),
    "D13": (2048, 7, 7, 512, 1, 1, 2, 3),
    "R1": (3, 224, 224, 64, 7, 7, 2, 3),
    "R3": (64, 56, 56, 64, 3, 3, 1, 1),
    "R4": (64, 56, 56, 256, 1, 1, 1, 0),
    "R6": (128, 56, 56, 128, 3, 3, 2, 1),
    "R10": (256, 14, 14, 256, 3, 3, 1, 1),
    "R13": (512, 7, 7, 512, 3, 3, 1, 1),
    # at N = 1 these "GPU" layers take 30-90 ms in torch on 2 cores: cheap enough to keep
    "V2": (64, 224, 224, 64, 3, 3, 1, 1),
    "V8": (512, 28, 28, 512, 3, 3, 1, 1),
    "S1": (3, 128, 128, 96, 11, 11, 1, 0),
    "S2": (64, 64, 64, 128, 9, 9, 1, 0),
}
GRAD_LAYERS = ("D4", "R3", "R4", "R6")


def network_layer(op, name, batch=1):
    c, h, w, o, r, s, stride, padding = LAYERS[name]
    return layer_case(op, (batch, c, h, w), (o, c, r, s), "float32", stride=stride,
                      padding=padding, name=name)


def layer_cases(op="conv"):
    names = LAYERS if op == "conv" else GRAD_LAYERS
    return [network_layer(op, name) for name in names]


def quick_conv_cases(op="conv"):
    return [seed_multifilter(op), network_layer(op, "D4")]


MNIST_BATCH = 100   # the seed's batch is 1000; 100 keeps a 2-core run short
# 3x3 valid convs: 1->3 on 28x28, 3->3 on 26x26, a 2x2 max pool (24 -> 12), 3->6 on
# 12x12, 6->6 on 10x10; 6 x 4 x 4 = 96 features after the second pool (fc 96->30->10)
MNIST_LAYERS = (("conv1", 1, 3, 28), ("conv2", 3, 3, 26), ("conv3", 3, 6, 12),
                ("conv4", 6, 6, 10))


def mnist_cases(op):
    return [layer_case(op, (MNIST_BATCH, c, size, size), (o, c, 3, 3), "float32", padding=0,
                       name=f"seed-mnist-cnn-n{MNIST_BATCH}-{layer}")
            for layer, c, o, size in MNIST_LAYERS]


def seed_conv_cases(op="conv"):
    return [seed_multifilter(op)] + mnist_cases(op)


def seed_grad_weight_cases(op="conv_grad_weight"):
    # gradient of sum(filter(x, w)) w.r.t. a 3x3 kernel on a 500x500 float64 image: dy = 1
    kernel = make_case(op, [(1, 1, 500, 500), (1, 1, 500, 500)], "float64",
                       data=("random", "ones"), name="seed-grad-kernel",
                       weight_shape=(1, 1, 3, 3), padding=1)
    return [kernel] + mnist_cases(op)


# The GPU suite: the layers too large for a CPU (V, S) and the R series at their full N
# (32; 128 for the convnet-benchmarks S layers), forward and backward; float16 too for R and
# V (the Triton-vs-cuDNN target). conv_relu: the fused conv + bias + ReLU against the
# unfused sequence (float32 with bias; float16 without, where cuDNN's native half path
# applies), and the seed's depthwise RGB filters.
GPU_LAYERS = ("V2", "V8", "S1", "S2", "R1", "R3", "R4", "R6", "R10", "R13")


def gpu_layer_cases(op="conv"):
    cases = []
    for name in GPU_LAYERS:
        c, h, w, o, r, s, stride, padding = LAYERS[name]
        batch = 128 if name.startswith("S") else 32
        for dtype in ("float32", "float16") if name[0] in "RV" else ("float32",):
            x_shape, w_shape = (batch, c, h, w), (o, c, r, s)
            if op == "conv_relu":
                shapes = [x_shape, w_shape] + ([(o,)] if dtype == "float32" else [])
                cases.append(make_case(op, shapes, dtype, stride=stride, padding=padding,
                                       name=name))
            else:
                cases.append(layer_case(op, x_shape, w_shape, dtype, stride=stride,
                                        padding=padding, name=name))
    if op == "conv":
        cases.append(layer_case(op, (1, 3, 512, 512), (3, 1, 3, 3), "float32", groups=3,
                                padding=1, name="seed-rgb-filters"))
    return cases


def small_conv_relu_cases(op="conv_relu"):
    """conv's small cases, as conv + ReLU (fused kernels against the unfused sequence)."""
    return [Case(Spec.make(op, c.spec.shapes, c.spec.dtypes, **c.spec.kwargs), c.data, c.strided,
                 c.name, c.tags) for c in small_conv_cases("conv")]

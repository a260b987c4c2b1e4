#!/usr/bin/env python3
"""Build classic ImageNet CNNs as ONNX files with random weights.

Usage: build_classic_cnns.py --family FAMILY --out FILE.onnx
                             [--width-divisor D] [--seed S]

FAMILY is one of alexnet, alexnet-caffe, vgg16, googlenet, resnet18,
resnet50, mobilenetv2. The graphs follow torchvision's layouts and are
written the way `torch.onnx.export` writes them in eval mode (opset 13):
Conv with separate, un-fused BatchNormalization, Relu, Clip(0, 6) with
its bounds as inputs (ReLU6), MaxPool with pads, GlobalAveragePool,
Flatten, Gemm (transB=1), Add, Concat, Dropout. Exceptions, chosen so
that every form the sqz reader accepts appears somewhere:

- googlenet is torchvision's Inception v1 (BatchNormalization after every
  convolution, 3x3 convolutions in the "5x5" branch, no auxiliary heads,
  transform_input off); its classifier is written as MatMul + Add, as some
  exporters write a Linear layer.
- resnet18 flattens with Reshape to [0, -1] instead of Flatten.
- alexnet-caffe is BVLC's Caffe AlexNet (bvlc_alexnet deploy.prototxt):
  LRN across channels after conv1 and conv2, two groups in conv2, conv4 and
  conv5, 227 x 227 input.

--width-divisor divides every hidden channel count (not the 3 input
channels or the 1000 classes): the same layer structure with fewer weights,
e.g. a VGG-16 that fits a quick test. Weights are drawn from a fixed numpy
seed (He-normal for convolutions and Gemm, so activations keep their scale
through deep networks; biases and BatchNormalization statistics small and
random), so a run is reproducible byte for byte.

The model has one input `input` (N x 3 x S x S, symbolic N) and one output
`logits` (N x 1000), except alexnet-caffe, which ends as BVLC's deploy net
does, in a Softmax `prob` (N x 1000) reading the logits `fc8`. Needs `numpy` and `onnx` (the test venv of
`.ci/install-test-deps` has both).
"""

import argparse
import sys

try:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError as error:
    print(
        f"build_classic_cnns: {error} in {sys.executable}; run .ci/install-test-deps "
        "and use the Python it prints",
        file=sys.stderr,
    )
    sys.exit(2)

OPSET = 13
CLASSES = 1000
# BatchNormalization scale range at the end of a residual branch.
RESIDUAL_GAMMA = (0.1, 0.3)


class Builder:
    """Accumulates nodes and initializers; each method adds one layer and
    returns the name of its output."""

    def __init__(self, seed, divisor):
        self.rng = np.random.default_rng(seed)
        self.divisor = divisor
        self.nodes = []
        self.initializers = []
        self.count = {}

    def width(self, channels):
        """A hidden channel count after --width-divisor."""
        return max(1, channels // self.divisor)

    def name(self, kind):
        self.count[kind] = self.count.get(kind, 0) + 1
        return f"{kind}_{self.count[kind]}"

    def constant(self, name, array):
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op, inputs, name=None, **attributes):
        name = name or self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attributes))
        return name

    def conv(self, x, cin, cout, k, stride=1, pad=0, groups=1, bias=True, prefix=None):
        name = prefix or self.name("conv")
        fan_in = cin // groups * k * k
        w = self.rng.normal(0, np.sqrt(2.0 / fan_in), (cout, cin // groups, k, k))
        inputs = [x, self.constant(f"{name}.weight", w.astype(np.float32))]
        if bias:
            b = self.rng.normal(0, 0.01, cout).astype(np.float32)
            inputs.append(self.constant(f"{name}.bias", b))
        return self.node(
            "Conv",
            inputs,
            name=name,
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[pad] * 4,
            dilations=[1, 1],
            group=groups,
        )

    def batch_norm(self, x, channels, eps=1e-5, gamma=(0.5, 1.5), prefix=None):
        name = prefix or self.name("bn")
        params = {
            "weight": self.rng.uniform(*gamma, channels),
            "bias": self.rng.normal(0, 0.1, channels),
            "running_mean": self.rng.normal(0, 0.1, channels),
            "running_var": self.rng.uniform(0.5, 1.5, channels),
        }
        inputs = [x] + [
            self.constant(f"{name}.{key}", value.astype(np.float32))
            for key, value in params.items()
        ]
        return self.node("BatchNormalization", inputs, name=name, epsilon=eps, momentum=0.9)

    def conv_bn(
        self, x, cin, cout, k, stride=1, pad=0, groups=1, eps=1e-5, relu="relu", gamma=(0.5, 1.5)
    ):
        """Conv without bias, BatchNormalization, then ReLU, ReLU6 or nothing.
        A small `gamma` range keeps residual branches from doubling the
        activations' variance at every block."""
        y = self.conv(x, cin, cout, k, stride, pad, groups, bias=False)
        y = self.batch_norm(y, cout, eps, gamma)
        if relu == "relu":
            y = self.node("Relu", [y])
        elif relu == "relu6":
            y = self.relu6(y)
        return y

    def relu6(self, x):
        low = self.constant(self.name("clip_min"), np.array(0.0, np.float32))
        high = self.constant(self.name("clip_max"), np.array(6.0, np.float32))
        return self.node("Clip", [x, low, high])

    def max_pool(self, x, k, stride, pad=0, ceil=False):
        return self.node(
            "MaxPool",
            [x],
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[pad] * 4,
            ceil_mode=int(ceil),
        )

    def gemm(self, x, cin, cout, name=None):
        name = name or self.name("fc")
        w = self.rng.normal(0, np.sqrt(2.0 / cin), (cout, cin)).astype(np.float32)
        b = self.rng.normal(0, 0.01, cout).astype(np.float32)
        inputs = [x, self.constant(f"{name}.weight", w), self.constant(f"{name}.bias", b)]
        return self.node("Gemm", inputs, name=name, alpha=1.0, beta=1.0, transB=1)

    def matmul_add(self, x, cin, cout, name):
        """A Linear layer written as MatMul by the transposed weights + Add."""
        w = self.rng.normal(0, np.sqrt(2.0 / cin), (cin, cout)).astype(np.float32)
        b = self.rng.normal(0, 0.01, cout).astype(np.float32)
        product = self.node("MatMul", [x, self.constant(f"{name}.weight", w)], name=f"{name}/matmul")
        return self.node("Add", [product, self.constant(f"{name}.bias", b)], name=name)

    def flatten(self, x):
        return self.node("Flatten", [x], axis=1)

    def dropout(self, x):
        return self.node("Dropout", [x])

    def model(self, x, output, side):
        """The model whose last node writes `output`, which is called
        `logits` unless it is a Softmax's `prob`."""
        last = self.nodes[-1]
        assert last.output[0] == output
        if output != "prob":
            last.output[0] = output = "logits"
        graph = helper.make_graph(
            self.nodes,
            "classic_cnn",
            [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", 3, side, side])],
            [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["N", CLASSES])],
            self.initializers,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 7
        onnx.checker.check_model(model)
        return model


def alexnet(b):
    w = b.width
    x = "input"
    x = b.node("Relu", [b.conv(x, 3, w(64), 11, 4, 2)])
    x = b.max_pool(x, 3, 2)
    x = b.node("Relu", [b.conv(x, w(64), w(192), 5, 1, 2)])
    x = b.max_pool(x, 3, 2)
    x = b.node("Relu", [b.conv(x, w(192), w(384), 3, 1, 1)])
    x = b.node("Relu", [b.conv(x, w(384), w(256), 3, 1, 1)])
    x = b.node("Relu", [b.conv(x, w(256), w(256), 3, 1, 1)])
    x = b.max_pool(x, 3, 2)
    x = b.dropout(b.flatten(x))
    x = b.dropout(b.node("Relu", [b.gemm(x, w(256) * 36, w(4096))]))
    x = b.node("Relu", [b.gemm(x, w(4096), w(4096))])
    return b.gemm(x, w(4096), CLASSES), 224


def alexnet_caffe(b):
    w = b.width

    def lrn(x):
        return b.node("LRN", [x], size=5, alpha=1e-4, beta=0.75, bias=1.0)

    x = "input"
    x = b.node("Relu", [b.conv(x, 3, w(96), 11, 4, 0, prefix="conv1")])
    x = b.max_pool(lrn(x), 3, 2, ceil=True)
    x = b.node("Relu", [b.conv(x, w(96), w(256), 5, 1, 2, groups=2, prefix="conv2")])
    x = b.max_pool(lrn(x), 3, 2, ceil=True)
    x = b.node("Relu", [b.conv(x, w(256), w(384), 3, 1, 1, prefix="conv3")])
    x = b.node("Relu", [b.conv(x, w(384), w(384), 3, 1, 1, groups=2, prefix="conv4")])
    x = b.node("Relu", [b.conv(x, w(384), w(256), 3, 1, 1, groups=2, prefix="conv5")])
    x = b.max_pool(x, 3, 2, ceil=True)
    x = b.flatten(x)
    x = b.dropout(b.node("Relu", [b.gemm(x, w(256) * 36, w(4096), name="fc6")]))
    x = b.dropout(b.node("Relu", [b.gemm(x, w(4096), w(4096), name="fc7")]))
    x = b.gemm(x, w(4096), CLASSES, name="fc8")
    return b.node("Softmax", [x], name="prob", axis=1), 227


def vgg16(b):
    w = b.width
    x = "input"
    cin = 3
    for block in [[64, 64], [128, 128], [256] * 3, [512] * 3, [512] * 3]:
        for channels in block:
            x = b.node("Relu", [b.conv(x, cin, w(channels), 3, 1, 1)])
            cin = w(channels)
        x = b.max_pool(x, 2, 2)
    x = b.flatten(x)
    x = b.dropout(b.node("Relu", [b.gemm(x, cin * 49, w(4096))]))
    x = b.dropout(b.node("Relu", [b.gemm(x, w(4096), w(4096))]))
    return b.gemm(x, w(4096), CLASSES), 224


def googlenet(b):
    w = b.width
    eps = 1e-3

    def basic(x, cin, cout, k, stride=1, pad=0):
        return b.conv_bn(x, cin, cout, k, stride, pad, eps=eps)

    def inception(x, cin, c1, c3r, c3, c5r, c5, pool_proj):
        c1, c3r, c3, c5r, c5, pool_proj = map(w, (c1, c3r, c3, c5r, c5, pool_proj))
        branch1 = basic(x, cin, c1, 1)
        branch2 = basic(basic(x, cin, c3r, 1), c3r, c3, 3, 1, 1)
        branch3 = basic(basic(x, cin, c5r, 1), c5r, c5, 3, 1, 1)
        branch4 = basic(b.max_pool(x, 3, 1, 1, ceil=True), cin, pool_proj, 1)
        y = b.node("Concat", [branch1, branch2, branch3, branch4], axis=1)
        return y, c1 + c3 + c5 + pool_proj

    x = basic("input", 3, w(64), 7, 2, 3)
    x = b.max_pool(x, 3, 2, ceil=True)
    x = basic(x, w(64), w(64), 1)
    x = basic(x, w(64), w(192), 3, 1, 1)
    x = b.max_pool(x, 3, 2, ceil=True)
    c = w(192)
    x, c = inception(x, c, 64, 96, 128, 16, 32, 32)
    x, c = inception(x, c, 128, 128, 192, 32, 96, 64)
    x = b.max_pool(x, 3, 2, ceil=True)
    for spec in [
        (192, 96, 208, 16, 48, 64),
        (160, 112, 224, 24, 64, 64),
        (128, 128, 256, 24, 64, 64),
        (112, 144, 288, 32, 64, 64),
        (256, 160, 320, 32, 128, 128),
    ]:
        x, c = inception(x, c, *spec)
    x = b.max_pool(x, 2, 2, ceil=True)
    x, c = inception(x, c, 256, 160, 320, 32, 128, 128)
    x, c = inception(x, c, 384, 192, 384, 48, 128, 128)
    x = b.dropout(b.flatten(b.node("GlobalAveragePool", [x])))
    return b.matmul_add(x, c, CLASSES, "fc"), 224


def resnet(b, blocks, bottleneck):
    w = b.width
    expansion = 4 if bottleneck else 1

    def block(x, cin, planes, stride):
        out = w(planes) * expansion
        if bottleneck:
            y = b.conv_bn(x, cin, w(planes), 1)
            y = b.conv_bn(y, w(planes), w(planes), 3, stride, 1)
            y = b.conv_bn(y, w(planes), out, 1, relu=None, gamma=RESIDUAL_GAMMA)
        else:
            y = b.conv_bn(x, cin, w(planes), 3, stride, 1)
            y = b.conv_bn(y, w(planes), out, 3, 1, 1, relu=None, gamma=RESIDUAL_GAMMA)
        shortcut = x
        if stride != 1 or cin != out:
            shortcut = b.conv_bn(x, cin, out, 1, stride, relu=None)
        return b.node("Relu", [b.node("Add", [y, shortcut])]), out

    x = b.conv_bn("input", 3, w(64), 7, 2, 3)
    x = b.max_pool(x, 3, 2, 1)
    c = w(64)
    for stage, (planes, count) in enumerate(zip([64, 128, 256, 512], blocks)):
        for i in range(count):
            x, c = block(x, c, planes, 2 if stage > 0 and i == 0 else 1)
    x = b.node("GlobalAveragePool", [x])
    if bottleneck:
        x = b.flatten(x)
    else:
        shape = b.constant("flatten_shape", np.array([0, -1], np.int64))
        x = b.node("Reshape", [x, shape])
    return b.gemm(x, c, CLASSES), 224


def mobilenetv2(b):
    w = b.width
    x = b.conv_bn("input", 3, w(32), 3, 2, 1, relu="relu6")
    c = w(32)
    for t, channels, n, s in [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = c * t
            y = x
            if t != 1:
                y = b.conv_bn(y, c, hidden, 1, relu="relu6")
            y = b.conv_bn(y, hidden, hidden, 3, stride, 1, groups=hidden, relu="relu6")
            y = b.conv_bn(y, hidden, w(channels), 1, relu=None)
            if stride == 1 and c == w(channels):
                y = b.node("Add", [x, y])
            x, c = y, w(channels)
    x = b.conv_bn(x, c, w(1280), 1, relu="relu6")
    x = b.dropout(b.flatten(b.node("GlobalAveragePool", [x])))
    return b.gemm(x, w(1280), CLASSES), 224


FAMILIES = {
    "alexnet": alexnet,
    "alexnet-caffe": alexnet_caffe,
    "vgg16": vgg16,
    "googlenet": googlenet,
    "resnet18": lambda b: resnet(b, [2, 2, 2, 2], bottleneck=False),
    "resnet50": lambda b: resnet(b, [3, 4, 6, 3], bottleneck=True),
    "mobilenetv2": mobilenetv2,
}


def build(family, seed=0, divisor=1):
    """The ONNX model of `family` (a key of FAMILIES)."""
    b = Builder(seed, divisor)
    output, side = FAMILIES[family](b)
    return b.model("input", output, side)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--family", required=True, choices=sorted(FAMILIES))
    parser.add_argument("--out", required=True)
    parser.add_argument("--width-divisor", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.width_divisor < 1:
        parser.error("--width-divisor must be at least 1")
    onnx.save(build(args.family, args.seed, args.width_divisor), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write a VGG-16 ONNX file in torchvision's layout with random weights.

13 convolutions (3x3, pad 1, ReLU; max pool 2x2 after blocks 1-5),
adaptive average pool (identity at 224x224, so omitted), Flatten and three
fully connected layers (Gemm, transB=1) with ReLU and Dropout between:
138,357,544 parameters, about 553 MB of float32. The weights are random
(He-normal, seeded), so the file tests scale, not accuracy. Keep the
output out of git.

usage: target/ci-venv/bin/python scripts/build_vgg16_onnx.py OUT.onnx [SEED]
"""

import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CONFIG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
          512, 512, 512, "M", 512, 512, 512, "M"]


def he(rng, shape, fan_in):
    return (rng.standard_normal(shape, dtype=np.float32)
            * np.float32(np.sqrt(2.0 / fan_in)))


def build(seed):
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    x, channels, index = "input", 3, 0
    for item in CONFIG:
        if item == "M":
            out = f"pool{index}"
            nodes.append(helper.make_node("MaxPool", [x], [out], name=out,
                                          kernel_shape=[2, 2], strides=[2, 2]))
        else:
            w = f"features.{index}.weight"
            b = f"features.{index}.bias"
            inits.append(numpy_helper.from_array(
                he(rng, (item, channels, 3, 3), channels * 9), w))
            inits.append(numpy_helper.from_array(
                np.zeros(item, np.float32), b))
            conv = f"conv{index}"
            nodes.append(helper.make_node("Conv", [x, w, b], [conv], name=conv,
                                          kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
            out = f"relu{index}"
            nodes.append(helper.make_node("Relu", [conv], [out], name=out))
            channels = item
        x = out
        index += 1 if item == "M" else 2
    nodes.append(helper.make_node("Flatten", [x], ["flat"], name="flatten", axis=1))
    x, width = "flat", channels * 7 * 7
    for i, (k, out_width) in enumerate([(0, 4096), (3, 4096), (6, 1000)]):
        w, b = f"classifier.{k}.weight", f"classifier.{k}.bias"
        inits.append(numpy_helper.from_array(he(rng, (out_width, width), width), w))
        inits.append(numpy_helper.from_array(np.zeros(out_width, np.float32), b))
        fc = f"fc{i}"
        nodes.append(helper.make_node("Gemm", [x, w, b], [fc], name=fc, transB=1))
        x, width = fc, out_width
        if i < 2:
            nodes.append(helper.make_node("Relu", [x], [f"fcrelu{i}"], name=f"fcrelu{i}"))
            nodes.append(helper.make_node("Dropout", [f"fcrelu{i}"], [f"drop{i}"], name=f"drop{i}"))
            x = f"drop{i}"
    graph = helper.make_graph(
        nodes, "vgg16",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 1000])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return model


def main():
    out = sys.argv[1]
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    model = build(seed)
    params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    onnx.save(model, out)
    print(f"{out}: {params} parameters")


if __name__ == "__main__":
    main()

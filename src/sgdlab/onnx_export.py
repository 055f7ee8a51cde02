"""Export a trained model to ONNX, so it runs without sgdlab (onnxruntime, from any language).

The graph is the evaluation-mode forward pass, layer by layer:
Dense -> Gemm (Y = X @ W + b), ReLU/Sigmoid/Tanh -> the ONNX op of the same name,
BatchNorm -> BatchNormalization with the running averages (inference form),
Standardize -> Sub and Div by the stored mean and std,
Dropout -> nothing (it is the identity at evaluation), Conv2D -> Conv,
MaxPool2D/AvgPool2D -> MaxPool/AveragePool, Flatten -> Flatten.  The input is float32
``input`` of shape (batch, *model.input_shape): (batch, features), or (batch, C, H, W)
for images, with a dynamic batch dimension.  Outputs:
a classifier gives ``logits`` and ``probabilities`` (Softmax, or Sigmoid for
sigmoid_cross_entropy); a regressor one output, ``predictions``.  A classifier
trained with mse has no probabilities in sgdlab either: it gives ``logits`` only.

Opset 17 and IR version 8: understood by onnxruntime >= 1.13 and every current
converter.  Needs the ``onnx`` package (``pip install 'sgdlab[onnx]'``).
"""

import os

import numpy as np

from .checkpoint import atomic_path
from .errors import ExportError

OPSET = 17
IR_VERSION = 8  # the IR version that came with opset 17: older runtimes refuse newer ones
INPUT_NAME = "input"
BATCH_DIM = "batch"


class GraphBuilder:
    """Collects nodes and float32 initializers; each ``add`` returns its output's name."""

    def __init__(self, helper, numpy_helper):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.initializers = [], []

    def constant(self, name, array):
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def rename(self, old, new):
        """Call the tensor ``old`` ``new`` everywhere (the last layer's output takes the public name)."""
        for node in self.nodes:
            node.input[:] = [new if n == old else n for n in node.input]
            node.output[:] = [new if n == old else n for n in node.output]

    def add(self, op, inputs, name, output=None, **attributes):
        output = output or f"{name}_out"
        self.nodes.append(self.helper.make_node(op, list(inputs), [output], name=name, **attributes))
        return output


def _dense(builder, layer, x, name):
    """Y = X @ W + b as Gemm (W stored (in, out), so transB = 0)."""
    return builder.add("Gemm", [x, builder.constant(f"{name}.W", layer.W), builder.constant(f"{name}.b", layer.b)],
                       name)


def _batch_norm(builder, layer, x, name):
    """y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta: the evaluation-mode BatchNorm."""
    inputs = [x] + [builder.constant(f"{name}.{part}", value) for part, value in (
        ("gamma", layer.gamma), ("beta", layer.beta), ("running_mean", layer.running_mean),
        ("running_var", layer.running_var))]
    return builder.add("BatchNormalization", inputs, name, epsilon=float(layer.eps))


def _standardize(builder, layer, x, name):
    """y = (x - mean) / std with the training split's statistics: Sub then Div."""
    centred = builder.add("Sub", [x, builder.constant(f"{name}.mean", layer.mean)], f"{name}.sub")
    return builder.add("Div", [centred, builder.constant(f"{name}.std", layer.std)], name)


def _elementwise(op):
    def convert(builder, layer, x, name):
        return builder.add(op, [x], name)

    convert.__doc__ = f"The layer's function, element by element, as ONNX {op}."
    return convert


def _conv(builder, layer, x, name):
    """Conv with W (out, in, kh, kw), as stored, and zero padding on every side."""
    (ph, pw) = layer.padding
    return builder.add("Conv", [x, builder.constant(f"{name}.W", layer.W), builder.constant(f"{name}.b", layer.b)],
                       name, kernel_shape=list(layer.kernel), strides=list(layer.stride), pads=[ph, pw, ph, pw])


def _pool(op):
    def convert(builder, layer, x, name):
        return builder.add(op, [x], name, kernel_shape=list(layer.window), strides=list(layer.stride))

    convert.__doc__ = f"ONNX {op} over the layer's windows and strides (no padding, floor: sgdlab's output size)."
    return convert


def _flatten(builder, layer, x, name):
    """(N, C, H, W) -> (N, C·H·W) in C, H, W order, as sgdlab's Flatten."""
    return builder.add("Flatten", [x], name, axis=1)


def _identity_at_evaluation(builder, layer, x, name):
    """Dropout is y = x at evaluation: no node."""
    return x


CONVERTERS = {
    "Dense": _dense,
    "BatchNorm": _batch_norm,
    "Standardize": _standardize,
    "ReLU": _elementwise("Relu"),
    "Sigmoid": _elementwise("Sigmoid"),
    "Tanh": _elementwise("Tanh"),
    "Dropout": _identity_at_evaluation,
    "Conv2D": _conv,
    "MaxPool2D": _pool("MaxPool"),
    "AvgPool2D": _pool("AveragePool"),
    "Flatten": _flatten,
}

PROBABILITY_OPS = {"softmax_cross_entropy": ("Softmax", {"axis": -1}), "sigmoid_cross_entropy": ("Sigmoid", {})}


def output_names(model):
    """["logits", "probabilities"] for a classifier (["logits"] when its loss has no probabilities), else
    ["predictions"]."""
    if not model.is_classifier:
        return ["predictions"]
    return ["logits", "probabilities"] if model.loss_layer.name in PROBABILITY_OPS else ["logits"]


def _import_onnx():
    try:
        import onnx
    except ImportError:
        raise ExportError("ONNX export needs the onnx package: pip install 'sgdlab[onnx]'") from None
    return onnx


def build_onnx_model(model):
    """The model as an ``onnx.ModelProto`` (checked by onnx.checker); refuses a layer it cannot express."""
    from .model import Sequential

    if not isinstance(model, Sequential):
        raise ExportError(f"cannot export a {type(model).__name__} to ONNX: give an sgdlab model (Sequential, MLP)")
    for k, layer in enumerate(model.layers):
        kind = type(layer).__name__
        if kind not in CONVERTERS:
            raise ExportError(f"layer {k} ({kind}) cannot be exported to ONNX: supported layers are "
                              f"{', '.join(CONVERTERS)}")
    onnx = _import_onnx()
    from onnx import TensorProto, helper, numpy_helper

    builder = GraphBuilder(helper, numpy_helper)
    y = INPUT_NAME
    for k, layer in enumerate(model.layers):
        y = CONVERTERS[type(layer).__name__](builder, layer, y, f"layers.{k}.{type(layer).__name__}")
    outputs = output_names(model)
    builder.rename(y, outputs[0])
    if len(outputs) == 2:
        op, attributes = PROBABILITY_OPS[model.loss_layer.name]
        builder.add(op, [outputs[0]], "probabilities", output="probabilities", **attributes)
    graph = helper.make_graph(
        builder.nodes, "sgdlab",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [BATCH_DIM, *model.input_shape])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH_DIM, model.n_out]) for name in outputs],
        initializer=builder.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="sgdlab",
                              ir_version=IR_VERSION, doc_string=f"sgdlab {model!r}")
    from . import __version__

    proto.producer_version = __version__
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model, path):
    """Write ``model`` to ``path`` as an ONNX file (written to a temporary name and renamed); returns the path.

    A layer ONNX cannot express here raises ExportError naming it, before anything is written.
    """
    proto = build_onnx_model(model)
    path = os.fspath(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(proto.SerializeToString())
    return path

"""sgdlab: mini-batch stochastic gradient descent you can watch, step by step.

1. draw a mini-batch (``batches``) -> 2. compute the gradient (``model``,
``gradients``) -> 3. update the parameters (``optimizers``) -> 4. repeat
(``training``).  Heavy modules (plots, sweeps) load on first use.
"""

from . import errors
from .errors import CheckpointError, ConfigError, DataError, RunExistsError, SgdlabError
from .model import MLP, Sequential

__version__ = "0.1.0"

_LAZY = {
    "datasets": ("sgdlab.data", None),
    "data": ("sgdlab.data", None),
    "optimizers": ("sgdlab.optimizers", None),
    "plots": ("sgdlab.plots", None),
    "layers": ("sgdlab.layers", None),
    "fit": ("sgdlab.training", "fit"),
    "Trainer": ("sgdlab.training", "Trainer"),
    "Callback": ("sgdlab.training", "Callback"),
    "Dataset": ("sgdlab.data", "Dataset"),
    "Splits": ("sgdlab.data", "Splits"),
    "Dense": ("sgdlab.layers", "Dense"),
    "ReLU": ("sgdlab.layers", "ReLU"),
    "Sigmoid": ("sgdlab.layers", "Sigmoid"),
    "Tanh": ("sgdlab.layers", "Tanh"),
    "Dropout": ("sgdlab.layers", "Dropout"),
    "BatchNorm": ("sgdlab.layers", "BatchNorm"),
    "History": ("sgdlab.training", "History"),
    "EarlyStopping": ("sgdlab.training", "EarlyStopping"),
    "LivePlot": ("sgdlab.liveplot", "LivePlot"),
    "TrainConfig": ("sgdlab.config", "TrainConfig"),
    "numerical_diff": ("sgdlab.gradients", "numerical_diff"),
    "numerical_gradient": ("sgdlab.gradients", "numerical_gradient"),
    "gradient_check": ("sgdlab.gradients", "gradient_check"),
    "minimize": ("sgdlab.descent", "minimize"),
    "load_model": ("sgdlab.checkpoint", "load_model"),
    "save_model": ("sgdlab.checkpoint", "save_model"),
    "export_onnx": ("sgdlab.onnx_export", "export_onnx"),
    "TensorBoard": ("sgdlab.tensorboard_log", "TensorBoard"),
    "Dense": ("sgdlab.layers", "Dense"),
    "ReLU": ("sgdlab.layers", "ReLU"),
    "Conv2D": ("sgdlab.conv", "Conv2D"),
    "MaxPool2D": ("sgdlab.conv", "MaxPool2D"),
    "AvgPool2D": ("sgdlab.conv", "AvgPool2D"),
    "Flatten": ("sgdlab.conv", "Flatten"),
}

__all__ = ["MLP", "Sequential", "errors", "SgdlabError", "ConfigError", "DataError", "CheckpointError",
           "RunExistsError", *_LAZY]


def __dir__():
    """Every public name, the lazily loaded ones included (tab completion, help(sgdlab))."""
    return sorted(set(globals()) | set(__all__))


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'sgdlab' has no attribute {name!r}")
    import importlib

    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value

"""sgdlab: mini-batch stochastic gradient descent you can watch, step by step.

1. draw a mini-batch (``batches``) -> 2. compute the gradient (``model``,
``gradients``) -> 3. update the parameters (``optimizers``) -> 4. repeat
(``training``).  Heavy modules (plots, sweeps) load on first use.
"""

from . import errors
from .model import MLP, Sequential

__version__ = "0.1.0"

_LAZY = {
    "datasets": ("sgdlab.data", None),
    "data": ("sgdlab.data", None),
    "optimizers": ("sgdlab.optimizers", None),
    "plots": ("sgdlab.plots", None),
    "fit": ("sgdlab.training", "fit"),
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
    "Dense": ("sgdlab.layers", "Dense"),
    "ReLU": ("sgdlab.layers", "ReLU"),
    "Conv2D": ("sgdlab.conv", "Conv2D"),
    "MaxPool2D": ("sgdlab.conv", "MaxPool2D"),
    "AvgPool2D": ("sgdlab.conv", "AvgPool2D"),
    "Flatten": ("sgdlab.conv", "Flatten"),
}

__all__ = ["MLP", "Sequential", "errors", *_LAZY]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'sgdlab' has no attribute {name!r}")
    import importlib

    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value

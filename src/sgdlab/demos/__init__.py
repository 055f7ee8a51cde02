"""``sgdlab demo NAME --out DIR``: experiments from the tutorial, saved as PNG pictures.

Each demo is a function ``run(out_dir, show=False, quick=False) -> dict`` in a
module of this package; it writes its pictures into ``out_dir`` and returns the
numbers it shows (so tests can assert them).  ``quick`` shortens long runs.
"""

import importlib

from ..errors import ConfigError

DEMOS = {
    "gradient-field": ("sgdlab.demos.gradients", "gradient_field"),
    "numerical-error": ("sgdlab.demos.gradients", "numerical_error"),
    "lr-effects": ("sgdlab.demos.descent", "lr_effects"),
    "optimizers": ("sgdlab.demos.descent", "optimizers"),
    "local-minima": ("sgdlab.demos.descent", "local_minima"),
    "mnist-optimizers": ("sgdlab.demos.descent", "mnist_optimizers"),
    "overfitting": ("sgdlab.demos.overfitting", "overfitting"),
}


def get_demo(name):
    """The demo function called ``name``; ConfigError listing the names otherwise."""
    if name not in DEMOS:
        raise ConfigError(f"demo {name!r} is unknown: choose one of {', '.join(DEMOS)}")
    module_name, function = DEMOS[name]
    try:
        module = importlib.import_module(module_name)
        return getattr(module, function)
    except (ImportError, AttributeError):
        raise ConfigError(f"demo {name!r} is not available in this version of sgdlab") from None

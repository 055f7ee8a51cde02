"""``sgdlab demo NAME --out DIR``: experiments from the tutorial, saved as PNG pictures.

Each demo is a function ``run(out_dir, show=False, quick=False) -> dict`` in a
module of this package; it writes its pictures into ``out_dir`` and returns the
numbers it shows (so tests can assert them).  ``quick`` shortens long runs.
"""

import importlib
import os
import sys

from ..errors import ConfigError

DEMOS = {
    "gradient-field": ("sgdlab.demos.gradients", "gradient_field"),
    "numerical-error": ("sgdlab.demos.gradients", "numerical_error"),
    "lr-effects": ("sgdlab.demos.descent", "lr_effects"),
    "optimizers": ("sgdlab.demos.descent", "optimizers"),
    "local-minima": ("sgdlab.demos.descent", "local_minima"),
    "mnist-optimizers": ("sgdlab.demos.descent", "mnist_optimizers"),
    "overfitting": ("sgdlab.demos.overfitting", "overfitting"),
    "conv-filters": ("sgdlab.demos.conv_filters", "conv_filters"),
}


DEMO_PICTURES = {
    "gradient-field": ("gradient_field.png",),
    "numerical-error": ("numerical_error.png",),
    "lr-effects": ("lr_effects.png",),
    "optimizers": ("optimizers_paths.png", "optimizers_loss.png"),
    "local-minima": ("local_minima.png",),
    "mnist-optimizers": ("mnist_optimizers.png",),
    "overfitting": ("overfitting.png",),
    "conv-filters": ("conv_filters.png", "conv_feature_maps.png"),
}  # the files each demo writes: checked before it runs, so --overwrite decides about all of them


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


def save_figure(fig, out_dir, name):
    """Write ``fig`` as out_dir/name (PNG) and return the path."""
    path = os.path.join(os.fspath(out_dir), name)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def has_display():
    """True where a window could open (macOS, Windows, or an X11/Wayland display)."""
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def show_figures(paths, show):
    """Open the saved PNGs with pyplot when asked and a display exists; otherwise do nothing."""
    if not show or not has_display():
        return
    try:
        import matplotlib.pyplot as plt

        plt.switch_backend("TkAgg")
        for path in paths:
            plt.figure(os.path.basename(path))
            plt.imshow(plt.imread(path))
            plt.axis("off")
        plt.show()
    except Exception:  # a missing GUI toolkit must not fail a demo whose files are written
        pass

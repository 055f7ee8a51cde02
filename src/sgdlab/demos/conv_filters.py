"""What a convolutional network learns: the first layer's filters before and after training, and
the feature maps of one digit through each layer (chapter 7's picture)."""

import numpy as np

from . import save_figure, show_figures

SPEC = "conv16k5,pool2,conv32k5,pool2,100"


def _grid(fig, images, rows, title_row, top, height, cmap="gray", symmetric=False):
    """``images`` (n, h, w) as a block of small axes from ``top`` down, ``rows`` rows, labelled by ``title_row``."""
    n = len(images)
    cols = -(-n // rows)
    for k, image in enumerate(images):
        ax = fig.add_axes([0.13 + 0.86 * (k % cols) / cols, top - height * (k // cols + 1) / rows,
                           0.86 / cols * 0.92, height / rows * 0.92])
        limit = float(np.max(np.abs(image))) or 1.0
        ax.imshow(image, cmap=cmap, vmin=-limit if symmetric else 0, vmax=limit, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.text(0.01, top - height / 2, title_row, va="center", fontsize=9)


def conv_filters(out_dir, show=False, quick=False):
    """Train the chapter 7 net on MNIST (1 epoch; ``quick``: 150 iterations), then draw conv1's 16
    filters at initialisation and after, and one test digit's maps after each conv (ReLU) and pool."""
    from ..config import TrainConfig
    from ..data import load_mnist
    from ..optimizers import Momentum
    from ..plots import _figure
    from ..run import build_model
    from ..training import fit

    data = load_mnist(flatten=False)
    model = build_model(TrainConfig(layers=SPEC, seed=0), data.train.x.shape[1:], 10, "classification")
    before = model.layers[0].W[:, 0].copy()
    fit(model, data.train, Momentum(lr=0.05, momentum=0.9), batch_size=100,
        epochs=None if quick else 1, iterations=150 if quick else None, seed=0, progress=False,
        train_metrics="running")
    _, test_accuracy = model.evaluate(data.test)
    after = model.layers[0].W[:, 0].copy()

    fig = _figure(9.0, 3.6)
    fig.set_layout_engine("none")  # the small axes are placed by hand
    _grid(fig, before, 2, "conv1 filters\nat He init", 0.88, 0.38, cmap="RdBu_r", symmetric=True)
    _grid(fig, after, 2, "conv1 filters\nafter training", 0.44, 0.38, cmap="RdBu_r", symmetric=True)
    fig.suptitle(f"The first layer's 16 filters (5x5), red = positive weight; test accuracy {test_accuracy:.3f}",
                 fontsize=10)
    filters_path = save_figure(fig, out_dir, "conv_filters.png")

    digit = data.test.batch(np.array([0]))[0]  # one image, scaled to [0, 1]
    y = digit.reshape(1, *model.input_shape)
    maps = [("input", y[0].copy())]
    for layer in model.layers:
        y = layer.forward(y)
        name = type(layer).__name__
        if name in ("ReLU", "MaxPool2D") and y.ndim == 4:
            label = "conv (ReLU)" if name == "ReLU" else "max pool"
            maps.append((f"{label}\n{y.shape[1]}x{y.shape[2]}x{y.shape[3]}", np.array(y[0])))
    fig = _figure(9.0, 7.5)
    fig.set_layout_engine("none")
    band = 0.9 / len(maps)
    for k, (label, stack) in enumerate(maps):
        rows = 1 if len(stack) <= 16 else 2
        _grid(fig, stack, rows, label, 0.95 - k * band, band * 0.9, cmap="viridis")
    fig.suptitle(f"Test digit 0 (label {int(data.test.t[0])}, predicted {int(model.predict(digit)[0])}) through "
                 f"each layer", fontsize=10)
    maps_path = save_figure(fig, out_dir, "conv_feature_maps.png")
    show_figures([filters_path, maps_path], show)
    return {"files": [filters_path, maps_path], "test_accuracy": float(test_accuracy),
            "filter_change": float(np.max(np.abs(after - before))),
            "map_shapes": [list(stack.shape) for _, stack in maps]}

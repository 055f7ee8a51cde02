"""The ``layers`` setting: hidden layers written as text, for the CLI, TOML configs and sweeps.

Items, comma-separated, in order (input and output sizes come from the data):

    N               a Dense layer of N units, then the activation (256,128: an MLP)
    convFkK         Conv2D with F filters of K x K, stride 1, no padding, then the activation;
                    add sS for stride S and pP for P pixels of zero padding (conv32k3s1p1)
    poolK           max pooling over K x K windows side by side (K must divide the image)
    avgpoolK        average pooling, the same way

Image layers (conv, pool) come first; a Flatten goes in before the first Dense layer.  MNIST's
network of chapter 7: ``conv16k5,pool2,conv32k5,pool2,100``.
"""

import re

from .errors import ConfigError

CONV = re.compile(r"conv(\d+)k(\d+)(?:s(\d+))?(?:p(\d+))?")
POOL = re.compile(r"(max|avg)?pool(\d+)")
GRAMMAR = "N (a Dense layer of N units), convFkK[sS][pP] (F filters of KxK, stride S, padding P), poolK or avgpoolK"


def _refuse(item, why):
    raise ConfigError(f"layers item {item!r} is not allowed: {why}")


def _refuse_in(value, item, why):
    shown = value if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else value
    raise ConfigError(f"layers={shown!r} is not allowed: item {item!r}: {why}")


def parse_item(item):
    """'100' / 100 -> 100; 'Conv16K5s1p0' -> 'conv16k5'; 'maxpool2' -> 'pool2': one canonical item."""
    if isinstance(item, bool):
        _refuse(item, f"use {GRAMMAR}")
    if isinstance(item, int):
        if item < 1:
            _refuse(item, "every hidden size must be a whole number >= 1")
        return item
    if not isinstance(item, str):
        _refuse(item, f"use {GRAMMAR}")
    text = item.strip().lower()
    if text.isdigit():
        return parse_item(int(text))
    conv, pool = CONV.fullmatch(text), POOL.fullmatch(text)
    if conv:
        filters, kernel, stride, padding = (None if g is None else int(g) for g in conv.groups())
        if filters < 1:
            _refuse(item, "zero channels: a conv layer needs at least 1 filter")
        if kernel < 1:
            _refuse(item, "a kernel needs at least 1 pixel")
        if stride is not None and stride < 1:
            _refuse(item, "the stride must be at least 1")
        return f"conv{filters}k{kernel}" + (f"s{stride}" if stride not in (None, 1) else "") \
            + (f"p{padding}" if padding else "")
    if pool:
        kind, size = pool.groups()
        if int(size) < 1:
            _refuse(item, "a pooling window needs at least 1 pixel")
        return f"{'avg' if kind == 'avg' else ''}pool{int(size)}"
    _refuse(item, f"use {GRAMMAR}")


def parse_layers(value):
    """'conv16k5,pool2,100' / ['conv16k5', 'pool2', 100] / 100 -> ('conv16k5', 'pool2', 100); '' -> ()."""
    if isinstance(value, str):
        items = value.split(",") if value.strip() else []
        if any(not p.strip() for p in items):
            raise ConfigError(f"layers={value!r} is not allowed: an empty item between commas; give a list such as "
                              f"256,128 or conv16k5,pool2,100")
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [value]
    else:
        try:
            items = list(value)
        except TypeError:
            raise ConfigError(f"layers={value!r} is not allowed: give a list such as 256,128 or "
                              f"conv16k5,pool2,100 ({GRAMMAR})") from None
    parsed = []
    for item in items:
        try:
            parsed.append(parse_item(item))
        except ConfigError as exc:
            _refuse_in(value, item, str(exc).split(": ", 1)[1])
    dense_seen = None
    for item in parsed:
        if isinstance(item, int):
            dense_seen = item
        elif dense_seen is not None:
            _refuse_in(value, item, f"it comes after the Dense layer {dense_seen}: image layers (conv, pool) "
                                    f"come first")
    return tuple(parsed)


def has_images(layers):
    """True when the layers start with conv or pool items (the model then takes (C, H, W) images)."""
    return bool(layers) and isinstance(layers[0], str)


def image_layers(spec, input_shape, n_outputs, activation="relu", dropout=0.0, batch_norm=False, seed=0):
    """The layer objects of a conv-net ``spec`` for images of ``input_shape`` (C, H, W).

    conv -> activation; pool; Flatten; then each Dense block as MLP builds it: Dense -> [BatchNorm]
    -> activation -> [Dropout]; a last Dense to ``n_outputs``.  Sizes that do not fit are refused
    with the item and the image size it meets.
    """
    import numpy as np

    from .conv import AvgPool2D, Conv2D, Flatten, MaxPool2D
    from .layers import ACTIVATIONS, BatchNorm, Dense, Dropout

    if activation not in ACTIVATIONS:
        raise ConfigError(f"activation={activation!r} is unknown: use {', '.join(ACTIVATIONS)}")
    shape, layers = tuple(input_shape), []
    for item in spec:
        if isinstance(item, int):
            if len(shape) > 1:
                layers.append(Flatten())
                shape = layers[-1].output_shape(shape)
            layers.append(Dense(shape[0], item, init="he" if activation == "relu" else "xavier"))
            if batch_norm:
                layers.append(BatchNorm(item))
            layers.append(ACTIVATIONS[activation]())
            if dropout:
                stream = np.random.SeedSequence(seed, spawn_key=(len(layers),))
                layers.append(Dropout(dropout, seed=int(stream.generate_state(1)[0])))
            shape = (item,)
            continue
        _, height, width = shape
        conv, pool = CONV.fullmatch(item), POOL.fullmatch(item)
        if conv:
            filters, kernel, stride, padding = (int(g or default) for g, default in zip(conv.groups(), (0, 0, 1, 0)))
            if kernel > min(height, width) + 2 * padding:
                _refuse(item, f"its {kernel}x{kernel} kernel is larger than the {height}x{width} image it gets"
                              + (f" padded by {padding}" if padding else ""))
            layers += [Conv2D(shape[0], filters, kernel, stride, padding), ACTIVATIONS[activation]()]
        else:
            size = int(pool.group(2))
            if height % size or width % size:
                _refuse(item, f"{size} does not divide the {height}x{width} image it gets: use a size that divides "
                              f"both sides")
            layers.append((AvgPool2D if pool.group(1) == "avg" else MaxPool2D)(size))
        shape = layers[-1 if pool else -2].output_shape(shape)
    if len(shape) > 1:
        layers.append(Flatten())
        shape = layers[-1].output_shape(shape)
    layers.append(Dense(shape[0], n_outputs, init="he" if activation == "relu" else "xavier"))
    return layers

"""Convolution, pooling and Flatten: the layers of a convolutional network, on (N, C, H, W) images.

Users see images as (N, C, H, W) and Conv2D's stored weights as (out, in, kh, kw) (the book's
(FN, C, FH, FW), PyTorch's too): W then b in the model's flat vector, like Dense.  Inside, the
layers work channels-last, (N, H, W, C), as PyTorch's ``channels_last`` does: a layer's output is
an (N, C, H, W) *view* of (N, H, W, C) memory, so the next conv or pool layer reads it contiguously
and the element-wise layers between them keep that layout (``Buffered.buffer_like``).  That makes

* im2col one copy of a ``sliding_window_view`` into columns ordered (kh, kw, C),
* the convolution one matrix product per layer and batch, (N·OH·OW, kh·kw·C + 1) @ (kh·kw·C + 1, out)
  (the extra column of ones and row b carry the bias),
* col2im kh·kw additions of (N, OH, OW, C) blocks, and pooling a few strided views,

all into buffers kept between calls.
"""

import math

import numpy as np

from .errors import ConfigError
from .layers import Layer, split


def _positive_int(name, value, low=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{name}={value!r} is not allowed: use a whole number >= {low}")
    return int(value)


def _pair(name, value, low=1):
    """3 -> (3, 3); (3, 5) -> (3, 5): the (height, width) of a kernel, stride or padding."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(values) != 2:
        raise ConfigError(f"{name}={value!r} is not allowed: give one whole number or (height, width)")
    return tuple(_positive_int(name, v, low) for v in values)


def _image_shape(layer, shape):
    if len(shape) != 3:
        raise ConfigError(f"{layer!r} takes images (C, H, W) but gets samples shaped {tuple(shape)}: "
                          f"give the model input_shape=(channels, height, width)")
    return shape


def _windows_out(layer, what, size, kernel, stride, padding=(0, 0)):
    """Output (height, width) of sliding ``kernel`` over ``size`` (+ padding) in steps of ``stride``."""
    out = []
    for n, k, s, p in zip(size, kernel, stride, padding):
        if k > n + 2 * p:
            raise ConfigError(f"{layer!r}: the {what} {kernel[0]}x{kernel[1]} is larger than its "
                              f"{size[0]}x{size[1]} input" + (f" padded by {p}" if p else ""))
        out.append((n + 2 * p - k) // s + 1)
    return tuple(out)


def _nhwc(x):
    """The (N, H, W, C) view of an (N, C, H, W) batch (contiguous when it is channels-last)."""
    return x.transpose(0, 2, 3, 1)


def _offset_views(a, kernel, stride, out_hw):
    """For each kernel offset (i, j): the (N, OH, OW, C) view a[:, i + s·oh, j + s·ow, :]."""
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    return [a[:, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw, :]
            for i in range(kh) for j in range(kw)]


class Conv2D(Layer):
    """y[n, o, r, c] = b[o] + sum over (i, j, ch) of W[o, ch, i, j] · xpad[n, ch, s·r + i, s·c + j].

    As one matrix product: Y = [cols, 1] @ [Wc; b] with cols[(n, r, c), (i, j, ch)] the input patches
    (im2col) and Wc the weights reordered to (kh·kw·C, out).  Backward: [dWc; db] = [cols, 1]ᵀ @ dY
    (db the sum of dY over (n, r, c)), dcols = dY @ Wcᵀ, and dx adds each patch's dcols back where it
    came from (col2im).  He initialisation: std sqrt(2 / (in·kh·kw)); biases start at zero.
    """

    decays_weights = True
    spatial = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__()
        self.in_channels = _positive_int("in_channels", in_channels)
        self.out_channels = _positive_int("out_channels", out_channels)
        self.kernel = _pair("kernel_size", kernel_size)
        self.stride = _pair("stride", stride)
        self.padding = _pair("padding", padding, low=0)
        self.w_shape = (self.out_channels, self.in_channels, *self.kernel)
        self.size = math.prod(self.w_shape) + self.out_channels
        self.in_hw = None  # (H, W), fixed by output_shape when the model is built

    def bind(self, params, grads):
        self.W, self.b = split(params, self.w_shape, (self.out_channels,))
        self.dW, self.db = split(grads, self.w_shape, (self.out_channels,))

    def init(self, rng):
        fan_in = self.in_channels * self.kernel[0] * self.kernel[1]
        self.W[...] = rng.standard_normal(self.w_shape) * np.sqrt(2.0 / fan_in)
        self.b[...] = 0

    def output_shape(self, shape):
        c, h, w = _image_shape(self, shape)
        if c != self.in_channels:
            raise ConfigError(f"{self!r} gets {c} input channels: it expects {self.in_channels}")
        self.in_hw = (h, w)
        self.out_hw = _windows_out(self, "kernel", (h, w), self.kernel, self.stride, self.padding)
        self.columns_per_sample = math.prod(self.out_hw) * (math.prod(self.kernel) * c + 1)  # im2col's floats per image
        return (self.out_channels, *self.out_hw)

    def describe(self):
        return {"type": "Conv2D", "in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel), "stride": list(self.stride), "padding": list(self.padding)}

    def _padded(self, xh):
        """The input with its zero border, (N, H + 2ph, W + 2pw, C); xh itself when there is no padding."""
        ph, pw = self.padding
        if not (ph or pw):
            return xh
        n, h, w, c = xh.shape
        xp = self.buffer("xpad", (n, h + 2 * ph, w + 2 * pw, c), xh.dtype)
        if getattr(self, "_zeroed", None) is not xp:  # the border is written once per buffer
            xp.fill(0)
            self._zeroed = xp
        xp[:, ph : ph + h, pw : pw + w, :] = xh
        return xp

    def _weight_columns(self, dtype):
        """[Wc; b]: W reordered to (kh·kw·C, out) with b as one more row, so the product adds the bias.

        A copy refreshed each pass (W itself stays (out, in, kh, kw))."""
        kh, kw = self.kernel
        k, o = kh * kw * self.in_channels, self.out_channels
        wcb = self.buffer("wcb", (k + 1, o), dtype)
        np.copyto(wcb[:k].reshape(kh, kw, self.in_channels, o), self.W.transpose(2, 3, 1, 0))
        wcb[k] = self.b
        return wcb

    def _columns(self, x, dtype):
        """im2col: the (N·OH·OW, kh·kw·C + 1) matrix of input patches, columns ordered (kh, kw, C), then a
        column of ones that multiplies the bias row of ``_weight_columns`` (so neither y += b nor a column
        sum for db is a pass of its own: both ride in the matrix products)."""
        n, (kh, kw), (oh, ow), c = x.shape[0], self.kernel, self.out_hw, self.in_channels
        xp = self._padded(_nhwc(x))
        if c == 1:  # one channel: each kernel offset's block is a plain 2-D slice; stored transposed, no transpose
            cols = self.buffer("cols", (kh * kw + 1, n, oh, ow), dtype)
            for block, view in zip(cols, _offset_views(xp, self.kernel, self.stride, self.out_hw)):
                np.copyto(block, view[..., 0])
            cols[-1] = 1
            return cols.reshape(kh * kw + 1, n * oh * ow).T
        cols = self.buffer("cols", (n, oh, ow, kh * kw * c + 1), dtype)
        windows = np.lib.stride_tricks.sliding_window_view(xp, self.kernel, axis=(1, 2))
        (sh, sw) = self.stride
        np.copyto(cols[..., :-1].reshape(n, oh, ow, kh, kw, c),
                  windows[:, : sh * (oh - 1) + 1 : sh, : sw * (ow - 1) + 1 : sw].transpose(0, 1, 2, 4, 5, 3))
        cols[..., -1] = 1
        return cols.reshape(n * oh * ow, kh * kw * c + 1)

    def forward(self, x, train=False):
        n, (oh, ow), o = x.shape[0], self.out_hw, self.out_channels
        dtype = np.result_type(x, self.W)
        self.cols = self._columns(x, dtype)
        self.wcb = self._weight_columns(dtype)
        y = self.buffer("y", (n, oh, ow, o), dtype)
        np.matmul(self.cols, self.wcb, out=y.reshape(n * oh * ow, o))
        return y.transpose(0, 3, 1, 2)

    def backward(self, dy, need_dx=True):
        (kh, kw), c, o = self.kernel, self.in_channels, self.out_channels
        k = kh * kw * c
        dy2 = _nhwc(dy).reshape(-1, o)  # a view when dy is channels-last, else one copy
        dwcb = self.buffer("dwcb", (k + 1, o), dy2.dtype)  # [dWc; db] = [cols, 1]ᵀ @ dY
        np.matmul(self.cols.T, dy2, out=dwcb)
        np.copyto(self.dW, dwcb[:k].reshape(kh, kw, c, o).transpose(3, 2, 0, 1))
        np.copyto(self.db, dwcb[k])
        if not need_dx:
            return None
        n, (oh, ow), (h, w), (ph, pw) = dy.shape[0], self.out_hw, self.in_hw, self.padding
        # dcols one (N, OH, OW, C) block per kernel offset: dy @ (that offset's (out, C) weights)
        dcols = self.buffer("dcols", (kh * kw, n, oh, ow, c), dy2.dtype)
        np.matmul(dy2, self.wcb[:k].reshape(kh * kw, c, o).transpose(0, 2, 1), out=dcols.reshape(kh * kw, -1, c))
        dxp = self.buffer("dxpad", (n, h + 2 * ph, w + 2 * pw, c), dy2.dtype)
        dxp.fill(0)
        for block, view in zip(dcols, _offset_views(dxp, self.kernel, self.stride, self.out_hw)):
            view += block
        return dxp[:, ph : ph + h, pw : pw + w, :].transpose(0, 3, 1, 2)


class _Pool2D(Layer):
    """Pooling over size x size windows moved by ``stride`` (default: the size, windows side by side), per channel."""

    spatial = True

    def __init__(self, size, stride=None):
        super().__init__()
        self.window = _pair("size", size)
        self.stride = self.window if stride is None else _pair("stride", stride)

    def output_shape(self, shape):
        c, h, w = _image_shape(self, shape)
        self.in_hw = (h, w)
        self.out_hw = _windows_out(self, "window", (h, w), self.window, self.stride)
        return (c, *self.out_hw)

    def describe(self):
        return {"type": type(self).__name__, "size": list(self.window), "stride": list(self.stride)}

    @property
    def tiles(self):
        """True when the windows cover the input exactly once (no overlap, no leftover rows or columns)."""
        return self.stride == self.window and all(n == o * k for n, o, k in zip(self.in_hw, self.out_hw, self.window))

    def _window_views(self, a):
        return _offset_views(a, self.window, self.stride, self.out_hw)

    def _tiled(self, a):
        """An (N, H, W, C) array of tiling windows as (N, OH, kh, OW, kw, C): a view, no copy."""
        (oh, ow), (kh, kw) = self.out_hw, self.window
        return a.reshape(a.shape[0], oh, kh, ow, kw, a.shape[3])

    def _spread(self, g, weights):
        """dx: each window's g (N, OH, OW, C) times each input's weight in it, added back where the input came from.

        ``weights``: a number, or per input one array (N, OH, kh, OW, kw, C) when the windows tile the
        input, else a list of (N, OH, OW, C) arrays, one per window offset."""
        n, (h, w), c = g.shape[0], self.in_hw, g.shape[3]
        dx = self.buffer("dx", (n, h, w, c), g.dtype)
        if self.tiles:
            np.multiply(g[:, :, None, :, None, :], weights, out=self._tiled(dx))
        else:
            dx.fill(0)
            tmp = self.buffer("spread", g.shape, g.dtype)
            for k, view in enumerate(self._window_views(dx)):
                np.multiply(g, weights if np.isscalar(weights) else weights[k], out=tmp)
                view += tmp
        return dx.transpose(0, 3, 1, 2)


def _maximum_of(views, out):
    """out = the element-wise maximum of ``views`` (one pass per view; NaN propagates)."""
    if len(views) == 1:
        np.copyto(out, views[0])
        return out
    np.maximum(views[0], views[1], out=out)
    for view in views[2:]:
        np.maximum(out, view, out=out)
    return out


class MaxPool2D(_Pool2D):
    """y = max of each window.  Backward: dy goes to the window's maximum; a tie of k equal maxima
    gives each dy / k (a subgradient; for k = 2 the same as central differences)."""

    def forward(self, x, train=False):
        """The max is separable: first over each window's rows, (N, OH, W, C), then over its columns:
        (kh - 1) + (kw - 1) passes of np.maximum instead of a copy and kh·kw - 1 (2 instead of 4 for 2x2)."""
        xh, (kh, kw), (sh, sw), (oh, ow) = _nhwc(x), self.window, self.stride, self.out_hw
        rows = _offset_views(xh, (kh, 1), (sh, 1), (oh, xh.shape[2]))
        row_max = _maximum_of(rows, self.buffer("row_max", rows[0].shape, x.dtype))
        y = self.buffer("y", (xh.shape[0], oh, ow, xh.shape[3]), x.dtype)
        _maximum_of(_offset_views(row_max, (1, kw), (1, sw), (oh, ow)), y)
        self.x, self.y = x, y
        return y.transpose(0, 3, 1, 2)

    def backward(self, dy, need_dx=True):
        xh, y = _nhwc(self.x), self.y
        n, oh, ow, c = y.shape
        (kh, kw), views = self.window, self._window_views(xh)
        if self.tiles:  # one mask laid out like the input, so the spread is one broadcast product
            is_max = self.buffer("is_max", (n, oh, kh, ow, kw, c), np.bool_)
            masks = [is_max[:, :, i, :, j, :] for i in range(kh) for j in range(kw)]
        else:
            is_max = masks = list(self.buffer("is_max", (kh * kw, n, oh, ow, c), np.bool_))
        if self.tiles and xh.flags.c_contiguous:
            np.equal(self._tiled(xh), y[:, :, None, :, None, :], out=is_max)
        else:
            for view, mask in zip(views, masks):
                np.equal(view, y, out=mask)
        ties = self.buffer("ties", y.shape, np.uint8 if kh * kw < 256 else np.int64)
        np.copyto(ties, masks[0])
        for mask in masks[1:]:
            np.add(ties, mask, out=ties)
        g = self.buffer("g", y.shape, dy.dtype)
        np.divide(_nhwc(dy), ties, out=g)
        return self._spread(g, is_max)


class AvgPool2D(_Pool2D):
    """y = mean of each window.  Backward: each input gets dy / (kh·kw) from every window it is in."""

    def forward(self, x, train=False):
        views = self._window_views(_nhwc(x))
        y = self.buffer("y", views[0].shape, x.dtype)
        np.copyto(y, views[0])
        for view in views[1:]:
            y += view
        y *= 1.0 / len(views)
        return y.transpose(0, 3, 1, 2)

    def backward(self, dy, need_dx=True):
        return self._spread(_nhwc(dy), 1.0 / (self.window[0] * self.window[1]))


class Flatten(Layer):
    """(N, C, H, W) -> (N, C·H·W) in C, H, W order (PyTorch's and the book's), so a Dense after it
    reads features in the documented order whatever the memory layout.  Backward: reshape back."""

    def output_shape(self, shape):
        return (math.prod(shape),)

    def forward(self, x, train=False):
        self.x_shape = x.shape
        if x.flags.c_contiguous:
            return x.reshape(x.shape[0], -1)
        y = self.buffer("y", (x.shape[0], math.prod(x.shape[1:])), x.dtype)
        np.copyto(y.reshape(x.shape), x)
        return y

    def backward(self, dy, need_dx=True):
        return dy.reshape(self.x_shape)


CONV_LAYERS = {"Conv2D": Conv2D, "MaxPool2D": MaxPool2D, "AvgPool2D": AvgPool2D, "Flatten": Flatten}

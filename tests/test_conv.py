import numpy as np
import pytest

from conftest import backward_errors, central_difference, relative_error
from sgdlab.conv import AvgPool2D, Conv2D, Flatten, MaxPool2D
from sgdlab.errors import ConfigError, DataError
from sgdlab.gradients import gradient_check, model_numerical_gradient
from sgdlab.layers import Dense, Dropout, ReLU
from sgdlab.model import Sequential


def bound(layer, input_shape, seed=0, dtype=np.float64):
    """The layer with its own flat vectors (random biases too), its output shape fixed for ``input_shape``."""
    out_shape = layer.output_shape(input_shape)
    params, grads = np.zeros(layer.size, dtype), np.zeros(layer.size, dtype)
    layer.bind(params, grads)
    layer.init(np.random.default_rng(seed))
    if layer.size:
        layer.b[...] = np.random.default_rng(seed + 1).standard_normal(layer.b.shape)
    return params, grads, out_shape


def reference_conv(x, W, b, stride, padding):
    """The definition, one output pixel at a time: y[n, o, r, c] = b[o] + sum W[o] * window."""
    n, _, h, w = x.shape
    out, _, kh, kw = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh, ow = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
    y = np.empty((n, out, oh, ow))
    for r in range(oh):
        for c in range(ow):
            window = xp[:, :, r * stride : r * stride + kh, c * stride : c * stride + kw]
            y[:, :, r, c] = np.einsum("nchw,ochw->no", window, W) + b
    return y


def reference_pool(x, size, stride, reduce):
    n, ch, h, w = x.shape
    oh, ow = (h - size) // stride + 1, (w - size) // stride + 1
    y = np.empty((n, ch, oh, ow))
    for r in range(oh):
        for c in range(ow):
            y[:, :, r, c] = reduce(x[:, :, r * stride : r * stride + size, c * stride : c * stride + size], axis=(2, 3))
    return y


CONV_CASES = [  # (in, out, kernel, stride, padding, height, width): stride 1 and 2, padding 0 and 2, odd and even
    (1, 3, 3, 1, 0, 7, 7),
    (2, 3, 3, 2, 0, 8, 8),
    (2, 4, 5, 1, 2, 6, 7),
    (3, 2, (3, 2), 2, 2, 9, 6),
    (1, 2, 4, 2, 2, 6, 5),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_forward_matches_the_definition(case):
    cin, cout, k, s, p, h, w = case
    layer = Conv2D(cin, cout, k, stride=s, padding=p)
    _, _, out_shape = bound(layer, (cin, h, w))
    x = np.random.default_rng(1).standard_normal((3, cin, h, w))
    y = layer.forward(x)
    assert y.shape == (3, *out_shape)
    if isinstance(k, int):
        np.testing.assert_allclose(y, reference_conv(x, layer.W, layer.b, s, p), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_backward_matches_central_differences(case):
    cin, cout, k, s, p, h, w = case
    layer = Conv2D(cin, cout, k, stride=s, padding=p)
    params, grads, out_shape = bound(layer, (cin, h, w))
    rng = np.random.default_rng(2)
    x, r = rng.standard_normal((3, cin, h, w)), rng.standard_normal((3, *out_shape))
    input_error, param_error = backward_errors(layer, x, r, params, grads)
    assert param_error < 1e-8
    assert input_error < 1e-8


POOL_CASES = [(2, None, 6, 8), (2, None, 7, 5), (3, 2, 7, 7), (2, 1, 5, 4), (3, None, 6, 6)]


@pytest.mark.parametrize("cls, reduce", [(MaxPool2D, np.max), (AvgPool2D, np.mean)])
@pytest.mark.parametrize("size, stride, h, w", POOL_CASES)
def test_pool_forward_and_backward(cls, reduce, size, stride, h, w):
    layer = cls(size, stride)
    _, _, out_shape = bound(layer, (3, h, w))
    rng = np.random.default_rng(3)
    x, r = rng.standard_normal((2, 3, h, w)), rng.standard_normal((2, *out_shape))
    y = layer.forward(x, train=True)
    np.testing.assert_allclose(y, reference_pool(x, size, stride or size, reduce), rtol=1e-12)

    def f():
        return float(np.sum(layer.forward(x, train=True) * r))

    layer.forward(x, train=True)
    dx = layer.backward(r).copy()
    assert relative_error(dx, central_difference(f, x)) < 1e-8


def test_max_pool_ties_split_the_gradient():
    """A 2-way tie matches central differences exactly (each gets dy / 2); a k-way tie gives each dy / k."""
    layer = MaxPool2D(2)
    layer.output_shape((1, 2, 4))
    x = np.array([[[[1.0, 1.0, 5.0, 0.0], [0.0, -1.0, 5.0, 5.0]]]])  # window 1: 2-way tie, window 2: 3-way
    r = np.array([[[[1.0, 6.0]]]])
    layer.forward(x, train=True)
    dx = layer.backward(r)
    np.testing.assert_allclose(dx, [[[[0.5, 0.5, 2.0, 0.0], [0.0, 0.0, 2.0, 2.0]]]])
    two_way = np.ascontiguousarray(x[..., :2])
    layer2 = MaxPool2D(2)
    layer2.output_shape((1, 2, 2))

    def f():
        return float(np.sum(layer2.forward(two_way, train=True)) * 3.0)

    layer2.forward(two_way, train=True)
    np.testing.assert_allclose(layer2.backward(np.full((1, 1, 1, 1), 3.0)), central_difference(f, two_way),
                               rtol=1e-8)


def test_flatten_uses_channel_height_width_order_whatever_the_layout():
    conv = Conv2D(1, 3, 2)
    bound(conv, (1, 4, 4))
    x = np.random.default_rng(4).standard_normal((2, 1, 4, 4))
    y = conv.forward(x)
    assert not y.flags.c_contiguous  # channels-last memory behind an (N, C, H, W) view
    flat = Flatten()
    assert flat.output_shape((3, 3, 3)) == (27,)
    np.testing.assert_array_equal(flat.forward(y), np.ascontiguousarray(y).reshape(2, -1))
    assert flat.backward(np.arange(54.0).reshape(2, 27)).shape == (2, 3, 3, 3)


def small_convnet(dtype=np.float64, seed=0, pool=MaxPool2D, extra=()):
    return Sequential([Conv2D(2, 3, 3, padding=1), ReLU(), pool(2), *extra, Conv2D(3, 4, 2, stride=2), ReLU(),
                       Flatten(), Dense(4 * 2 * 2, 5), ReLU(), Dense(5, 3)],
                      input_shape=(2, 8, 8), dtype=dtype, seed=seed, weight_decay=0.01)


@pytest.mark.parametrize("pool", [MaxPool2D, AvgPool2D])
def test_gradient_check_reports_conv_layers(pool):
    model = small_convnet(pool=pool)
    rng = np.random.default_rng(5)
    x, t = rng.standard_normal((4, 2, 8, 8)), rng.integers(0, 3, 4)
    report = gradient_check(model, x, t)
    assert report.passed and report.max_rel_error < 1e-6
    names = [row.name for row in report]
    assert names[:2] == ["0:Conv2D.W", "0:Conv2D.b"] and "3:Conv2D.W" in names
    assert report["0:Conv2D.W"].shape == (3, 2, 3, 3)
    assert "0:Conv2D.W" in report.table()


def test_gradient_check_catches_a_wrong_conv_gradient(monkeypatch):
    model = small_convnet()
    rng = np.random.default_rng(6)
    x, t = rng.standard_normal((3, 2, 8, 8)), rng.integers(0, 3, 3)
    original = Conv2D.backward

    def off_by_a_bit(self, dy, need_dx=True):
        dx = original(self, dy, need_dx)
        self.dW[0, 0, 0, 0] *= 1.01
        return dx

    monkeypatch.setattr(Conv2D, "backward", off_by_a_bit)
    report = gradient_check(model, x, t)
    assert not report.passed and not report["0:Conv2D.W"].passed and report["0:Conv2D.b"].passed


def test_float32_model_is_checked_in_float64_and_trains_in_float32():
    model = small_convnet(dtype=np.float32)
    rng = np.random.default_rng(7)
    x, t = rng.standard_normal((3, 2, 8, 8)).astype(np.float32), rng.integers(0, 3, 3)
    loss, grads = model.gradient(x, t)
    assert grads.dtype == np.float32 and model.layers[0].W.dtype == np.float32
    assert gradient_check(model, x, t).passed
    assert model.params.dtype == np.float32  # the check worked on a float64 copy


def test_numerical_gradient_works_and_complex_step_refuses_in_one_line():
    model = small_convnet()
    rng = np.random.default_rng(8)
    x, t = rng.standard_normal((2, 2, 8, 8)), rng.integers(0, 3, 2)
    _, grads = model.gradient(x, t)
    numerical = model_numerical_gradient(model, x, t)
    assert relative_error(grads, numerical) < 1e-6
    with pytest.raises(ConfigError, match="complex step supports .*not Conv2D") as info:
        model_numerical_gradient(model, x, t, method="complex")
    assert "\n" not in str(info.value)


def test_parameters_are_views_in_layer_order_weights_then_bias():
    model = small_convnet()
    conv = model.layers[0]
    assert conv.W.shape == (3, 2, 3, 3) and conv.b.shape == (3,)
    assert np.shares_memory(conv.W, model.params) and np.shares_memory(conv.dW, model.grads)
    model.params[:] = np.arange(model.params.size)
    np.testing.assert_array_equal(conv.W.ravel(), np.arange(54))
    np.testing.assert_array_equal(conv.b, [54, 55, 56])
    assert model.layers[3].W.ravel()[0] == 57  # the next Conv2D's W follows


def test_he_initialisation_scale():
    layer = Conv2D(16, 64, 5)
    bound(layer, (16, 12, 12))
    layer.init(np.random.default_rng(0))
    assert abs(layer.W.std() - np.sqrt(2 / (16 * 25))) < 0.01 * np.sqrt(2 / (16 * 25)) * 5
    assert not layer.b.any()


def test_images_and_flat_rows_give_the_same_output_and_bad_shapes_are_named():
    model = small_convnet()
    x = np.random.default_rng(9).standard_normal((3, 2, 8, 8))
    np.testing.assert_array_equal(model.forward(x).copy(), model.forward(x.reshape(3, -1)))
    assert model.predict(x).shape == (3,)
    with pytest.raises(DataError, match="100 features per sample: this model expects 128"):
        model.forward(np.zeros((2, 100)))


@pytest.mark.parametrize("layers, input_shape, match", [
    ([Conv2D(1, 2, 3), Flatten(), Dense(18, 2)], None, "needs input_shape"),
    ([Conv2D(1, 2, 7), Flatten(), Dense(18, 2)], (1, 5, 5), "kernel 7x7 is larger than its 5x5 input"),
    ([Conv2D(3, 2, 3), Flatten(), Dense(18, 2)], (1, 5, 5), "gets 1 input channels: it expects 3"),
    ([Conv2D(1, 2, 3), Dense(18, 2)], (1, 5, 5), "put a Flatten"),
    ([Conv2D(1, 2, 3), Flatten(), Dense(10, 2)], (1, 5, 5), "got 18 input features"),
    ([Conv2D(1, 2, 3), ReLU(), MaxPool2D(4), Flatten(), Dense(2, 2)], (1, 5, 5), "window 4x4 is larger"),
    ([Flatten(), Dense(25, 2), Conv2D(1, 2, 3)], (1, 5, 5), "takes images"),
])
def test_bad_architectures_are_named(layers, input_shape, match):
    with pytest.raises(ValueError, match=match):
        Sequential(layers, input_shape=input_shape)


@pytest.mark.parametrize("kwargs, match", [({"out_channels": 0}, "out_channels=0"), ({"kernel_size": (3, 3, 3)},
                                           "kernel_size"), ({"stride": 0}, "stride=0"), ({"padding": -1}, "padding")])
def test_bad_conv_settings_are_named(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Conv2D(**{"in_channels": 1, "out_channels": 2, "kernel_size": 3, **kwargs})


def test_description_round_trip_and_weight_decay_covers_conv_weights():
    model = small_convnet(extra=(Dropout(0.2, seed=3),))
    model.params[:] = np.random.default_rng(10).standard_normal(model.params.size)
    copy = Sequential.from_description(model.describe(), model.params)
    assert copy.input_shape == (2, 8, 8) and copy.describe() == model.describe()
    x = np.random.default_rng(11).standard_normal((2, 2, 8, 8))
    np.testing.assert_array_equal(copy.forward(x), model.forward(x))
    squares = sum(float(np.sum(layer.W ** 2)) for layer in model.layers if hasattr(layer, "W"))
    assert model.penalty() == pytest.approx(0.005 * squares)


def test_dropout_between_conv_layers_keeps_the_gradient_exact():
    model = small_convnet(extra=(Dropout(0.3, seed=1),))
    rng = np.random.default_rng(12)
    x, t = rng.standard_normal((3, 2, 8, 8)), rng.integers(0, 3, 3)
    assert gradient_check(model, x, t).passed


def test_evaluation_chunks_stay_bounded_and_agree_with_one_pass():
    model = small_convnet()
    assert model.eval_rows <= 10_000
    x = np.random.default_rng(13).standard_normal((70, 2, 8, 8))
    whole = model.predict(x, batch_size=70)
    np.testing.assert_array_equal(model.predict(x, batch_size=16), whole)
    from sgdlab.model import MLP
    assert MLP([784, 100, 10]).eval_rows == 10_000
    big = Sequential([Conv2D(1, 16, 5), ReLU(), MaxPool2D(2), Conv2D(16, 32, 5), ReLU(), MaxPool2D(2), Flatten(),
                      Dense(512, 100), ReLU(), Dense(100, 10)], input_shape=(1, 28, 28))
    assert 100 <= big.eval_rows <= 2000


def test_fit_with_numerical_gradients_follows_backprop_on_a_conv_net():
    from sgdlab.data import Dataset
    from sgdlab.optimizers import SGD
    from sgdlab.training import fit

    rng = np.random.default_rng(14)
    x, t = rng.standard_normal((12, 1, 6, 6)), rng.integers(0, 3, 12)
    runs = {}
    for gradient in ("backprop", "numerical"):
        model = Sequential([Conv2D(1, 2, 3), ReLU(), MaxPool2D(2), Flatten(), Dense(8, 3)], input_shape=(1, 6, 6),
                           dtype=np.float64, seed=2)
        start = model.params.copy()
        fit(model, Dataset(x, t), SGD(lr=0.1), batch_size=4, iterations=6, gradient=gradient, progress=False)
        runs[gradient] = model.params.copy()
    assert relative_error(runs["numerical"], runs["backprop"]) < 1e-7
    assert relative_error(runs["backprop"], start) > 1e-3  # it trained


@pytest.mark.slow
def test_demo_conv_filters_draws_filters_and_feature_maps(tmp_path):
    from sgdlab.demos import get_demo

    result = get_demo("conv-filters")(tmp_path, quick=True)
    assert [p.rsplit("/", 1)[-1] for p in result["files"]] == ["conv_filters.png", "conv_feature_maps.png"]
    for path in result["files"]:
        assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert result["test_accuracy"] > 0.9 and result["filter_change"] > 0
    assert result["map_shapes"] == [[1, 28, 28], [16, 24, 24], [16, 12, 12], [32, 8, 8], [32, 4, 4]]

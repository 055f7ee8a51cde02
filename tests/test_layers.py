import numpy as np
import pytest

from conftest import backward_errors
from sgdlab.layers import Dense, ReLU, Sigmoid, Tanh, split


def bound_dense(n_in, n_out, seed=0):
    layer = Dense(n_in, n_out)
    params, grads = np.zeros(layer.size), np.zeros(layer.size)
    layer.bind(params, grads)
    layer.init(np.random.default_rng(seed))
    layer.b[...] = np.random.default_rng(seed + 1).standard_normal(n_out)
    return layer, params, grads


def test_split_gives_views_in_order():
    flat = np.arange(9.0)
    w, b = split(flat, (2, 3), (3,))
    assert np.shares_memory(w, flat) and np.shares_memory(b, flat)
    assert w.tolist() == [[0, 1, 2], [3, 4, 5]] and b.tolist() == [6, 7, 8]


def test_dense_forward_is_affine():
    layer, params, _ = bound_dense(4, 3)
    x = np.random.default_rng(2).standard_normal((5, 4))
    np.testing.assert_allclose(layer.forward(x), x @ layer.W + layer.b, rtol=1e-12)


def test_dense_backward_matches_central_differences():
    layer, params, grads = bound_dense(4, 3)
    rng = np.random.default_rng(3)
    x, r = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    input_error, param_error = backward_errors(layer, x, r, params, grads)
    assert param_error < 1e-8
    assert input_error < 1e-8


def test_dense_backward_overwrites_gradients():
    layer, params, grads = bound_dense(3, 2)
    x, r = np.ones((4, 3)), np.ones((4, 2))
    layer.forward(x)
    layer.backward(r)
    first = grads.copy()
    layer.forward(x)
    layer.backward(r)
    np.testing.assert_array_equal(grads, first)


@pytest.mark.parametrize("cls", [ReLU, Sigmoid, Tanh])
def test_activation_backward_matches_central_differences(cls):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 5))
    x[np.abs(x) < 1e-3] = 0.5  # keep ReLU away from its kink
    r = rng.standard_normal((6, 5))
    assert backward_errors(cls(), x, r)[0] < 1e-8


@pytest.mark.parametrize("cls,expected", [(ReLU, [0.0, 0.0, 2.0]), (Sigmoid, 1 / (1 + np.exp(-np.array([-1.0, 0.0, 2.0])))),
                                          (Tanh, np.tanh([-1.0, 0.0, 2.0]))])
def test_activation_values(cls, expected):
    np.testing.assert_allclose(cls().forward(np.array([[-1.0, 0.0, 2.0]])), [expected], rtol=1e-12)


def test_buffers_are_reused_between_calls_and_never_alias_the_input():
    layer = ReLU()
    x = np.array([[-1.0, 2.0]])
    x_before = x.copy()
    y1 = layer.forward(x)
    y2 = layer.forward(x * 2)
    assert np.shares_memory(y1, y2)
    np.testing.assert_array_equal(x, x_before)
    big = layer.forward(np.ones((10, 2)))
    assert big.shape == (10, 2)
    assert layer.forward(np.ones((3, 2))).shape == (3, 2)


def test_dense_rejects_unknown_init():
    with pytest.raises(ValueError, match="init='lecun'"):
        Dense(2, 2, init="lecun")


def test_layer_errors_are_config_errors_like_every_other_setting():
    from sgdlab.errors import ConfigError
    from sgdlab.layers import layer_from_description

    with pytest.raises(ConfigError, match="init='lecun'"):
        Dense(2, 2, init="lecun")
    with pytest.raises(ConfigError, match="layer type 'Magic' is unknown"):
        layer_from_description({"type": "Magic"})

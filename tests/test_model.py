import itertools

import numpy as np
import pytest

from conftest import central_difference, relative_error
from sgdlab import MLP, Sequential
from sgdlab.errors import ConfigError, DataError


def batch(n=6, d=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.integers(0, k, n)


@pytest.mark.parametrize("activation,loss,weight_decay",
                         list(itertools.product(["relu", "sigmoid", "tanh"], ["softmax_cross_entropy", "mse"],
                                                [0.0, 0.3])))
def test_backprop_equals_central_differences_float64(activation, loss, weight_decay):
    model = MLP([5, 4, 4, 3], activation=activation, loss=loss, seed=1, dtype=np.float64,
                weight_decay=weight_decay, task="classification")
    x, t = batch()
    _, grads = model.gradient(x, t)
    numeric = central_difference(lambda: model.loss(x, t, train=True), model.params)
    assert relative_error(grads, numeric) < 1e-6


def test_regression_targets_gradient():
    model = MLP([3, 5, 2], activation="tanh", loss="mse", dtype=np.float64, seed=0)
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    _, grads = model.gradient(x, t)
    assert relative_error(grads, central_difference(lambda: model.loss(x, t), model.params)) < 1e-6
    assert model.predict(x).shape == (8, 2)


def test_flat_parameter_order_is_w_then_b_per_dense_layer():
    model = MLP([3, 4, 2], seed=0)
    dense = [layer for layer in model.layers if hasattr(layer, "W")]
    pieces = np.concatenate([np.concatenate([d.W.ravel(), d.b]) for d in dense])
    np.testing.assert_array_equal(model.params, pieces)
    assert model.params.size == 3 * 4 + 4 + 4 * 2 + 2
    for d in dense:
        assert np.shares_memory(d.W, model.params) and np.shares_memory(d.dW, model.grads)
    model.params[0] = 42.0
    assert dense[0].W[0, 0] == 42.0


def test_gradient_called_twice_does_not_accumulate_and_leaves_inputs_alone():
    model = MLP([5, 4, 3], seed=0, dtype=np.float64, weight_decay=0.1)
    x, t = batch()
    x0, t0 = x.copy(), t.copy()
    first = model.gradient(x, t)[1].copy()
    second = model.gradient(x, t)[1]
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(t, t0)


def test_initialisation_is_seeded_and_scaled():
    a, b, c = MLP([784, 100, 10], seed=3), MLP([784, 100, 10], seed=3), MLP([784, 100, 10], seed=4)
    np.testing.assert_array_equal(a.params, b.params)
    assert not np.array_equal(a.params, c.params)
    assert a.layers[0].W.std() == pytest.approx(np.sqrt(2 / 784), rel=0.05)  # He for ReLU
    assert MLP([784, 100, 10], activation="tanh").layers[0].W.std() == pytest.approx(np.sqrt(1 / 784), rel=0.05)
    assert np.all(a.layers[0].b == 0)
    assert a.params.dtype == np.float32


def test_predict_accuracy_and_evaluate_agree_across_chunks(spirals):
    train, _ = spirals
    model = MLP([2, 16, 3], seed=0)
    x, t = train.batch(np.arange(len(train)))
    full = model.predict(x, batch_size=1000)
    np.testing.assert_array_equal(full, model.predict(x, batch_size=7))
    loss, acc = model.evaluate(train, batch_size=13)
    assert acc == pytest.approx(model.accuracy(x, t))
    assert loss == pytest.approx(model.loss(x, t), rel=1e-5)
    proba = model.predict_proba(x)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(proba.argmax(axis=1), full)


def test_description_round_trip_and_independent_copy():
    model = MLP([4, 3, 2], activation="sigmoid", weight_decay=0.01, seed=5)
    clone = Sequential.from_description(model.describe(), model.params)
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(clone.forward(x), model.forward(x))
    copy64 = model.copy(dtype="float64")
    assert copy64.params.dtype == np.float64
    copy64.params[:] = 0
    assert np.any(model.params != 0)


@pytest.mark.parametrize("kwargs,match", [
    ({"sizes": [784]}, "sizes"),
    ({"sizes": [784, 0, 10]}, "sizes"),
    ({"sizes": [4, 2], "activation": "swish"}, "activation='swish'"),
    ({"sizes": [4, 2], "loss": "hinge"}, "loss='hinge'"),
    ({"sizes": [4, 2], "dtype": "int8"}, "dtype"),
    ({"sizes": [4, 2], "weight_decay": -1}, "weight_decay"),
])
def test_bad_model_settings_are_named(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        MLP(**kwargs)


def test_wrong_number_of_features_is_refused():
    with pytest.raises(DataError, match="7 features .* expects 5"):
        MLP([5, 3]).forward(np.zeros((2, 7)))

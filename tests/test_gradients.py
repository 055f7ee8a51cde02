import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sgdlab
from sgdlab import MLP
from sgdlab.data import Dataset, make_spirals
from sgdlab.errors import ConfigError, DataError
from sgdlab.gradients import gradient_check, model_numerical_gradient, numerical_diff, numerical_gradient
from sgdlab.layers import Dense, Dropout, Layer, ReLU
from sgdlab.model import Sequential
from sgdlab.optimizers import SGD
from sgdlab.training import fit


def tutorial_f(x):
    return x[0] ** 2 + x[1] ** 2


def batch(n=7, d=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.integers(0, k, n)


def backprop(model, x, t):
    _, grads = model.gradient(x, t)
    return grads.copy()


def rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), np.max(np.abs(b))))


# -- the tutorial's definitions ------------------------------------------------------------------------


def test_tutorial_gradient_at_3_4_is_6_8():
    assert np.allclose(numerical_gradient(tutorial_f, np.array([3.0, 4.0])), [6.0, 8.0], atol=1e-9)
    assert np.allclose(numerical_gradient(tutorial_f, [0.0, 2.0]), [0.0, 4.0], atol=1e-9)
    assert np.allclose(sgdlab.numerical_gradient(tutorial_f, np.array([3.0, 0.0])), [6.0, 0.0], atol=1e-9)


def test_numerical_diff_of_the_tutorials_function():
    f = lambda x: 0.01 * x ** 2 + 0.1 * x  # noqa: E731
    assert numerical_diff(f, 5) == pytest.approx(0.2, abs=1e-10)
    assert numerical_diff(f, 10) == pytest.approx(0.3, abs=1e-10)
    assert numerical_diff(np.exp, 1.0, h=1e-5) == pytest.approx(np.e, rel=1e-9)


def test_h_1e_50_gives_zero_as_the_docs_explain():
    # x + 1e-50 == x in float64, so f(x + h) - f(x - h) is exactly 0
    assert np.array_equal(numerical_gradient(tutorial_f, np.array([3.0, 4.0]), h=1e-50), [0.0, 0.0])
    assert numerical_diff(lambda x: x ** 2, 3.0, h=1e-50) == 0.0


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 2)])
def test_numerical_gradient_any_shape_restores_x_bitwise(shape):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape) * 10 ** rng.uniform(-3, 3, shape)
    before = x.copy()
    weights = rng.standard_normal(shape)
    grad = numerical_gradient(lambda a: np.sum(weights * np.sin(a)), x, h=None)
    assert x.tobytes() == before.tobytes()
    assert grad.shape == shape and grad.dtype == np.float64
    assert np.allclose(grad, weights * np.cos(before), rtol=1e-6, atol=1e-6)


def test_numerical_gradient_reads_x_in_place_like_the_tutorial():
    W = np.array([[1.0, -2.0], [0.5, 3.0]])
    x = np.array([2.0, -1.0])
    grad = numerical_gradient(lambda _: float(np.sum((x @ W) ** 2)), W)  # f ignores its argument
    assert np.allclose(grad, 2 * np.outer(x, x @ W), atol=1e-7)


def test_numerical_gradient_restores_x_when_f_raises():
    x = np.array([1.0, 2.0])

    def f(a):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        numerical_gradient(f, x)
    assert np.array_equal(x, [1.0, 2.0])


def test_bad_h_and_float32_are_refused():
    with pytest.raises(ConfigError, match="h=0"):
        numerical_gradient(tutorial_f, np.array([1.0, 2.0]), h=0)
    with pytest.raises(ConfigError, match="h=nan"):
        numerical_diff(np.exp, 1.0, h=float("nan"))
    with pytest.raises(ConfigError, match="float32"):
        numerical_gradient(tutorial_f, np.array([1.0, 2.0], dtype=np.float32))


# -- the model's numerical gradient ----------------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hidden=st.lists(st.integers(1, 6), min_size=1, max_size=3), n_in=st.integers(1, 6),
       n_out=st.integers(1, 6), activation=st.sampled_from(["relu", "sigmoid", "tanh"]),
       loss=st.sampled_from(["softmax_cross_entropy", "mse"]), weight_decay=st.sampled_from([0.0, 0.1]),
       n=st.integers(1, 8), seed=st.integers(0, 2 ** 16))
def test_fast_numerical_gradient_equals_plain_loop(hidden, n_in, n_out, activation, loss, weight_decay, n, seed):
    model = MLP([n_in, *hidden, n_out], activation=activation, loss=loss, dtype=np.float64, seed=seed,
                weight_decay=weight_decay, task="classification")
    rng = np.random.default_rng(seed)
    model.params[...] += rng.uniform(-0.1, 0.1, model.params.size)  # non-zero biases too
    x, t = rng.standard_normal((n, n_in)), rng.integers(0, n_out, n)
    before = model.params.copy()
    fast = model.numerical_gradient(x, t)
    loop = model_numerical_gradient(model, x, t, method="loop")
    assert model.params.tobytes() == before.tobytes()
    scale = np.max(np.abs(loop))
    # the loop's own rounding noise is ~eps·|L|/h; where every gradient is that small there is nothing to compare
    noise = 1e-10 * max(1.0, abs(model.loss(x, t)))
    assert np.max(np.abs(fast - loop)) <= max(1e-8 * scale, noise)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "mse"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.2])
def test_complex_step_equals_backprop_to_1e_12(activation, loss, weight_decay):
    model = MLP([5, 6, 4, 3], activation=activation, loss=loss, dtype=np.float64, seed=3,
                weight_decay=weight_decay)
    model.params[...] += np.random.default_rng(0).uniform(-0.1, 0.1, model.params.size)
    x, t = batch()
    assert rel(model.numerical_gradient(x, t, method="complex"), backprop(model, x, t)) < 1e-12


def test_central_fast_path_agrees_with_backprop_on_digits_sized_net():
    rng = np.random.default_rng(0)
    model = MLP([64, 20, 10], dtype=np.float64, seed=0)
    x, t = rng.random((30, 64)), rng.integers(0, 10, 30)
    assert rel(model.numerical_gradient(x, t), backprop(model, x, t)) < 1e-7


def test_soft_targets_and_regression_targets():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 4))
    for loss, t in (("softmax_cross_entropy", rng.dirichlet(np.ones(3), 6)), ("mse", rng.standard_normal((6, 3)))):
        model = MLP([4, 5, 3], activation="tanh", loss=loss, dtype=np.float64, seed=1)
        g_bp = backprop(model, x, t)
        assert rel(model.numerical_gradient(x, t), g_bp) < 1e-8
        assert rel(model.numerical_gradient(x, t, method="complex"), g_bp) < 1e-12


def test_large_h_takes_the_general_path_and_matches_the_loop():
    model = MLP([4, 5, 3], activation="tanh", dtype=np.float64, seed=1)
    x, t = batch(d=4)
    fast = model.numerical_gradient(x, t, h=0.3)
    loop = model_numerical_gradient(model, x, t, h=0.3, method="loop")
    assert np.max(np.abs(fast - loop)) < 1e-12 * 1e4 * np.max(np.abs(loop))


def test_float32_model_is_differentiated_in_float64_without_touching_it():
    model32 = MLP([5, 6, 3], seed=0)
    x, t = batch()
    before = model32.params.copy()
    g = model32.numerical_gradient(x.astype(np.float32), t)
    assert g.dtype == np.float64 and np.array_equal(model32.params, before)
    model64 = model32.copy(dtype=np.float64)
    assert rel(g, backprop(model64, x.astype(np.float32).astype(np.float64), t)) < 1e-8


class Scale(Layer):
    """A layer the fast path does not know: y = 2x."""

    def forward(self, x, train=False):
        return 2 * x

    def backward(self, dy, need_dx=True):
        return 2 * dy


def test_unknown_layers_fall_back_to_the_loop_or_are_refused():
    layers = [Dense(4, 5), ReLU(), Scale(), Dense(5, 3)]
    model = Sequential(layers, dtype=np.float64, seed=0)
    x, t = batch(d=4)
    g_bp = backprop(model, x, t)
    assert rel(model.numerical_gradient(x, t), g_bp) < 1e-7
    # a float32 model with a layer the fast path does not know: the loop runs on a float64 copy
    model32 = Sequential([Dense(4, 5), ReLU(), Dropout(0.0), Dense(5, 3)], seed=0)
    before = model32.params.copy()
    g32 = model32.numerical_gradient(x, t)
    assert np.array_equal(model32.params, before)
    assert rel(g32, backprop(model32.copy(dtype=np.float64), x, t)) < 1e-7
    with pytest.raises(ConfigError, match="Scale"):
        model.numerical_gradient(x, t, method="complex")


def test_bad_arguments_are_refused():
    model = MLP([5, 3, 3], dtype=np.float64)
    x, t = batch()
    with pytest.raises(ConfigError, match="method='forward'"):
        model.numerical_gradient(x, t, method="forward")
    with pytest.raises(ConfigError, match="h=-1"):
        model.numerical_gradient(x, t, h=-1)
    with pytest.raises(DataError, match="label 3"):
        model.numerical_gradient(x, t + 1)
    with pytest.raises(DataError, match="features"):
        model.numerical_gradient(x[:, :4], t)
    with pytest.raises(DataError, match="rows"):
        model.numerical_gradient(x, t[:3])


# -- gradient check ----------------------------------------------------------------------------------------


def test_gradient_check_passes_on_a_correct_model():
    model = MLP([5, 6, 4, 3], activation="tanh", seed=0)  # float32: checked on a float64 copy
    x, t = batch()
    report = gradient_check(model, x, t)
    assert report.passed
    assert [row.name for row in report] == ["0:Dense.W", "0:Dense.b", "2:Dense.W", "2:Dense.b",
                                             "4:Dense.W", "4:Dense.b"]
    assert report["0:Dense.W"].shape == (5, 6)
    assert report.max_rel_error < 1e-8 and all(row.max_abs_error < 1e-9 for row in report)
    table = report.table()
    assert "0:Dense.W" in table and "5x6" in table and "FAIL" not in table and "passed" in table
    complex_report = gradient_check(model, x, t, method="complex")
    assert complex_report.passed and complex_report.max_rel_error < 1e-13


def test_gradient_check_fails_when_a_backward_is_broken(monkeypatch):
    model = MLP([5, 6, 3], seed=0, dtype=np.float64)
    x, t = batch()
    original = Dense.backward

    def broken(self, dy, need_dx=True):
        dx = original(self, dy, need_dx)
        if self is model.layers[0]:
            self.dW *= 1.01
        return dx

    monkeypatch.setattr(Dense, "backward", broken)
    report = gradient_check(model, x, t)
    assert not report.passed
    assert not report["0:Dense.W"].passed and report["0:Dense.W"].max_rel_error == pytest.approx(0.0099, rel=0.02)
    assert report["0:Dense.b"].passed and report["2:Dense.W"].passed
    assert "FAIL" in report.table()


def test_gradcheck_cli_exits_0_and_prints_a_table():
    result = subprocess.run([sys.executable, "-m", "sgdlab", "gradcheck", "--dataset", "digits", "--layers", "20"],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONWARNINGS": ""})
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("0:Dense.W") and "64x20" in line and line.endswith("pass") for line in lines)
    assert any(line.startswith("2:Dense.b") for line in lines)


# -- training with the numerical gradient ------------------------------------------------------------------


def test_fit_with_numerical_gradient_learns_and_tracks_backprop():
    data = make_spirals(n_samples=120, n_classes=3, noise=0.1, seed=0)
    runs = {}
    for gradient in ("numerical", "backprop"):
        # tanh: the spirals' centre point (0, 0) with zero biases sits exactly on a ReLU's kink, where the
        # central difference is the mean of the two one-sided slopes and backprop takes the right one
        model = MLP([2, 8, 3], activation="tanh", seed=0, dtype=np.float64)
        history = fit(model, data, SGD(lr=0.5), batch_size=30, iterations=40, gradient=gradient, seed=1,
                      progress=False)
        runs[gradient] = (np.array(history.iteration_loss), model.params.copy())
    loss_num, params_num = runs["numerical"]
    loss_bp, params_bp = runs["backprop"]
    assert loss_num[-5:].mean() < 0.8 * loss_num[:5].mean()
    assert np.max(np.abs(loss_num - loss_bp)) < 1e-7
    assert np.max(np.abs(params_num - params_bp)) < 1e-7


def test_fit_with_numerical_gradient_on_a_float32_model():
    data = Dataset(*batch(n=60, d=5, seed=4))
    model = MLP([5, 6, 3], seed=0)
    history = fit(model, data, SGD(lr=0.3), batch_size=20, iterations=30, gradient="numerical", progress=False)
    assert model.params.dtype == np.float32
    assert history.iteration_loss[-1] < history.iteration_loss[0]


# -- the pictures ------------------------------------------------------------------------------------------


def test_gradient_field_demo(tmp_path):
    from sgdlab.demos.gradients import gradient_field

    result = gradient_field(tmp_path, quick=True)
    assert result["files"] and all(os.path.getsize(p) > 10_000 for p in result["files"])
    assert result["gradient_at_3_4"] == pytest.approx([6.0, 8.0], abs=1e-8)
    assert result["max_error"] < 1e-8
    assert result["fraction_pointing_to_minimum"] == 1.0


def test_numerical_error_demo_shows_the_v(tmp_path):
    from sgdlab.demos.gradients import numerical_error

    result = numerical_error(tmp_path, quick=True)
    assert result["files"] and all(os.path.getsize(p) > 10_000 for p in result["files"])
    assert 1e-7 <= result["best_h_central"] <= 1e-4
    assert result["central_error_at_1e-16"] > 1e3 * result["min_error_central"]
    assert result["min_error_central"] < 1e-9
    assert result["best_h_forward"] < result["best_h_central"]
    assert result["complex_error_at_1e-20"] < 1e-14


def test_gradient_check_passes_a_tensor_whose_true_gradient_is_zero():
    """The Dense bias right before BatchNorm has gradient exactly 0: both sides are rounding noise."""
    model = MLP([5, 6, 3], batch_norm=True, dtype=np.float64, seed=0)
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((12, 5)), rng.integers(0, 3, 12)
    report = gradient_check(model, x, t)
    bias = report["0:Dense.b"]
    assert bias.max_rel_error > 1e-3 and bias.max_abs_error < 1e-8  # noise / noise
    assert bias.passed and report.passed

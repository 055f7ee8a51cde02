import numpy as np
import pytest

from conftest import central_difference, relative_error
from sgdlab.losses import MeanSquaredError, SoftmaxCrossEntropy


def test_cross_entropy_value_matches_the_definition():
    z = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 0.0]])
    t = np.array([2, 0])
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    expected = -np.mean(np.log(p[[0, 1], t]))
    assert SoftmaxCrossEntropy().forward(z, t) == pytest.approx(expected, rel=1e-14)


def test_cross_entropy_one_hot_equals_integer_labels():
    rng = np.random.default_rng(0)
    z, t = rng.standard_normal((7, 4)), rng.integers(0, 4, 7)
    a, b = SoftmaxCrossEntropy(), SoftmaxCrossEntropy()
    assert a.forward(z, t) == pytest.approx(b.forward(z, np.eye(4)[t]), rel=1e-13)
    np.testing.assert_allclose(a.backward(), b.backward(), atol=1e-15)


def test_cross_entropy_is_stable_for_huge_logits():
    loss = SoftmaxCrossEntropy()
    value = loss.forward(np.array([[1000.0, 0.0], [0.0, -1000.0]]), np.array([1, 0]))
    assert value == pytest.approx(500.0)
    assert np.all(np.isfinite(loss.backward()))


@pytest.mark.parametrize("labels", ["int", "onehot"])
def test_cross_entropy_gradient_is_exact(labels):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((5, 3))
    t = rng.integers(0, 3, 5)
    t = t if labels == "int" else np.eye(3)[t]
    loss = SoftmaxCrossEntropy()
    loss.forward(z, t)
    dz = loss.backward().copy()
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    onehot = t if t.ndim == 2 else np.eye(3)[t]
    np.testing.assert_allclose(dz, (p - onehot) / 5, atol=1e-15)
    assert relative_error(dz, central_difference(lambda: float(loss.forward(z, t)), z)) < 1e-8


def test_mse_value_and_gradient():
    rng = np.random.default_rng(2)
    y, t = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    loss = MeanSquaredError()
    assert loss.forward(y, t) == pytest.approx(0.5 * np.sum((y - t) ** 2) / 4, rel=1e-14)
    dy = loss.backward().copy()
    np.testing.assert_allclose(dy, (y - t) / 4, atol=1e-15)
    assert relative_error(dy, central_difference(lambda: float(loss.forward(y, t)), y)) < 1e-8


def test_mse_with_integer_labels_compares_one_hot_rows():
    y = np.array([[0.2, 0.8], [0.6, 0.1]])
    assert MeanSquaredError().forward(y, np.array([1, 0])) == pytest.approx(
        0.5 * np.sum((y - np.eye(2)[[1, 0]]) ** 2) / 2)

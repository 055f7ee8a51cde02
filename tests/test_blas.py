"""sgdlab.blas: the fused axpy/axpby the optimizers use, against the same formulas in NumPy."""

import subprocess
import sys

import numpy as np
import pytest

from sgdlab import blas


def numpy_blas_name():
    return np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_axpy_and_axpby_equal_numpy_formulas(dtype):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(100_003).astype(dtype), rng.standard_normal(100_003).astype(dtype)
    x_before, tol = x.copy(), 1e-6 if dtype == np.float32 else 1e-14
    expected = y + dtype(-0.3) * x
    np.testing.assert_allclose(blas.axpy(-0.3, x, y.copy()), expected, rtol=tol, atol=tol)
    expected = dtype(0.7) * x + dtype(0.9) * y
    got = y.copy()
    assert blas.axpby(0.7, x, 0.9, got) is got
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)
    np.testing.assert_array_equal(x, x_before)  # x is never written


def test_numpy_fallback_for_strided_complex_or_mixed_arrays():
    x = np.arange(20, dtype=np.float32)
    y = np.ones(20, dtype=np.float32)
    strided = np.ones(40, dtype=np.float32)[::2]
    np.testing.assert_allclose(blas.axpy(2.0, x, strided), 1 + 2 * x)          # not contiguous
    z = np.ones(3, dtype=np.complex128)
    np.testing.assert_allclose(blas.axpby(1.0, np.full(3, 1j), 2.0, z), 2 + 1j)  # complex
    np.testing.assert_allclose(blas.axpy(1.0, x.astype(np.float64), y), 1 + x)  # float64 into float32
    scratch = np.empty(20, np.float32)
    np.testing.assert_allclose(blas.axpby(0.5, x, 0.0, y, scratch=scratch), 0.5 * x)


def test_a_new_array_at_a_freed_arrays_address_is_not_mistaken_for_it():
    for _ in range(100):  # ids get reused after a free: the cached address must follow the array
        x, y = np.full(1000, 2.0), np.zeros(1000)
        blas.axpy(1.0, x, y)
        assert (y == 2.0).all()
        del x, y  # freed at once (reference counting): the next pair often gets the same ids


@pytest.mark.skipif(numpy_blas_name() != "scipy-openblas", reason="only NumPy's PyPI wheels promise these symbols")
def test_numpys_wheel_blas_is_used():
    assert blas.available(np.float32) and blas.available(np.float64)


def test_numpys_blas_is_found_after_scipy_loaded_its_own():
    """SciPy ships a second, 32-bit-integer OpenBLAS; it must not hide NumPy's (as it did in CI's order): the
    answer with SciPy loaded first is the answer without SciPy (and on NumPy's PyPI wheels, found)."""
    probe = "from sgdlab import blas; print(blas.available(numpy.float32), blas.available(numpy.float64))"
    alone = subprocess.run([sys.executable, "-c", "import numpy; " + probe], capture_output=True, text=True)
    after_scipy = subprocess.run([sys.executable, "-c", "import numpy, scipy.linalg, sklearn.neural_network; " + probe],
                                 capture_output=True, text=True)
    assert alone.returncode == 0 and after_scipy.returncode == 0, alone.stderr + after_scipy.stderr
    assert after_scipy.stdout.strip() == alone.stdout.strip()
    if numpy_blas_name() == "scipy-openblas":
        assert alone.stdout.strip() == "True True"

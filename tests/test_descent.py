"""Gradient descent on functions (descent.minimize), the step-3 demos, optimizers on MNIST, and the CLI."""

import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest

import sgdlab as sl
from sgdlab.demos import descent as demos
from sgdlab.descent import minimize
from sgdlab.errors import ConfigError
from sgdlab.optimizers import SGD, Adam, Momentum, get_optimizer


def function_2(x):
    return x[0] ** 2 + x[1] ** 2


START = np.array([-3.0, 4.0])
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# -- minimize ------------------------------------------------------------------------------------------


def test_good_lr_reaches_the_minimum_and_keeps_the_start():
    x0 = START.copy()
    path = sl.minimize(function_2, x0, SGD(lr=0.1), 100)
    assert path.points.shape == (101, 2) and path.values.shape == (101,)
    np.testing.assert_array_equal(path.points[0], [-3.0, 4.0])
    np.testing.assert_array_equal(x0, START)  # the caller's array is not moved
    # x_k = 0.8^k x_0 exactly for f = |x|², so after 100 steps |x| = 5 * 0.8^100 ≈ 1.0e-9
    assert np.linalg.norm(path.x) == pytest.approx(5 * 0.8 ** 100, rel=1e-3)
    assert path.f < 1e-17 and not path.diverged
    np.testing.assert_allclose(path.values, [function_2(p) for p in path.points])
    assert np.all(np.diff(path.values) < 0)


def test_two_steps_match_the_hand_computed_update():
    path = minimize(function_2, START, SGD(lr=0.1), 2)
    # x1 = x0 - 0.1 * 2 x0 = 0.8 x0 = (-2.4, 3.2); x2 = 0.8 x1 = (-1.92, 2.56)
    np.testing.assert_allclose(path.points, [[-3.0, 4.0], [-2.4, 3.2], [-1.92, 2.56]], rtol=0, atol=1e-9)
    path = minimize(function_2, START, Momentum(lr=0.1, momentum=0.9), 2)
    # v1 = -0.1 * (-6, 8) = (0.6, -0.8), x1 = (-2.4, 3.2); v2 = 0.9 v1 - 0.1 * (-4.8, 6.4) = (1.02, -1.36)
    np.testing.assert_allclose(path.points[2], [-1.38, 1.84], rtol=0, atol=1e-9)


def test_too_large_lr_diverges():
    path = minimize(function_2, START, SGD(lr=10.0), 100)
    distances = path.distances()
    assert np.all(np.diff(distances) > 0)  # |x| grows at every step
    # each step multiplies x by 1 - 2·10 = -19
    np.testing.assert_allclose(distances[1:] / distances[:-1], 19.0, rtol=1e-6)
    np.testing.assert_allclose(path.points[1], [57.0, -76.0], rtol=1e-9)
    assert distances[-1] > 1e127 and path.diverged


def test_too_small_lr_barely_moves():
    path = minimize(function_2, START, SGD(lr=1e-10), 100)
    moved = path.distances(START)[-1]
    # 100 steps of 2e-10 * |x| each: 1e-7 in all
    assert moved == pytest.approx(1e-7, rel=1e-3)
    assert path.f == pytest.approx(25.0, abs=1e-5) and not path.diverged


def test_numerical_and_exact_gradients_walk_the_same_path():
    numerical = minimize(function_2, START, Adam(lr=0.3), 40)
    exact = minimize(function_2, START, Adam(lr=0.3), 40, gradient=lambda x: 2 * x)
    np.testing.assert_allclose(numerical.points, exact.points, rtol=0, atol=1e-7)
    assert exact.f < 0.5  # Adam lr 0.3 from |x| = 5


def test_any_shape_and_optimizer_by_name():
    path = minimize(lambda w: float(np.sum((w - 1.0) ** 2)), np.zeros((2, 3)), "momentum", 300)
    assert path.points.shape == (301, 2, 3)
    np.testing.assert_allclose(path.x, np.ones((2, 3)), atol=1e-3)


def test_gradient_function_returning_x_itself_is_not_corrupted():
    # f = |x|²/2 has ∇f = x; a gradient function may hand back the very array it was given
    path = minimize(lambda x: 0.5 * float(x @ x), [1.0, 2.0], SGD(lr=0.5), 3, gradient=lambda x: x)
    np.testing.assert_allclose(path.points[:, 0], [1.0, 0.5, 0.25, 0.125], rtol=0, atol=1e-15)


def test_momentum_escapes_the_local_minimum_where_gd_stalls():
    local, global_, barrier = demos.double_well_minima()
    assert local == pytest.approx(1.347, abs=1e-3) and global_ == pytest.approx(-1.473, abs=1e-3)
    gd = minimize(demos.double_well, [2.5], SGD(lr=0.01), 200)
    momentum = minimize(demos.double_well, [2.5], Momentum(lr=0.01, momentum=0.9), 200)
    assert gd.x[0] == pytest.approx(local, abs=1e-6)
    assert np.all(gd.points[:, 0] > barrier)  # never crossed the barrier
    assert momentum.x[0] == pytest.approx(global_, abs=1e-3)
    assert momentum.f < gd.f - 2.8  # f(global) ≈ -5.444, f(local) ≈ -2.619


def test_escape_is_not_a_knife_edge():
    """Around the demo's settings (lr 0.01, x0 2.5) Momentum still escapes and GD still stalls."""
    _, _, barrier = demos.double_well_minima()

    def gradient(x):
        return 4 * x ** 3 - 8 * x + 1

    for lr in (0.008, 0.01, 0.012):
        for x0 in (2.2, 2.4, 2.5, 2.6):
            gd = minimize(demos.double_well, [x0], SGD(lr=lr), 300, gradient=gradient)
            momentum = minimize(demos.double_well, [x0], Momentum(lr=lr, momentum=0.9), 300, gradient=gradient)
            assert gd.x[0] > barrier and momentum.x[0] < barrier, (lr, x0)


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": -1}, "steps=-1 is not allowed"),
    ({"steps": 2.5}, "steps=2.5 is not allowed"),
    ({"gradient": "backprop"}, "gradient='backprop' is not allowed"),
    ({"h": 0.0}, "h=0.0 is not allowed"),
    ({"gradient": lambda x: 2 * x, "h": 1e-4}, "h=0.0001 applies only to gradient='numerical'"),
    ({"gradient": lambda x: x[:1]}, "gradient returned shape (1,) but x has shape (2,)"),
    ({"optimizer": 0.1}, "optimizer=0.1 is not allowed"),
    ({"optimizer": "lbfgs"}, "optimizer='lbfgs' is unknown"),
    ({"f": lambda x: x}, "f returned (2,), not a number"),
])
def test_bad_input_is_one_line_naming_the_value(kwargs, message):
    args = {"f": function_2, "x0": START, "optimizer": SGD(0.1), "steps": 3, **kwargs}
    with pytest.raises(ConfigError) as info:
        minimize(**args)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


# -- demos ---------------------------------------------------------------------------------------------


@pytest.fixture
def drawn(monkeypatch):
    """Every Figure a demo saves, beside the file it was saved to."""
    figures = []
    save = demos.save_figure

    def recording_save(fig, out_dir, name):
        path = save(fig, out_dir, name)
        figures.append((fig, path))
        return path

    monkeypatch.setattr(demos, "save_figure", recording_save)
    return figures


def assert_legible(figures, files):
    assert [path for _, path in figures] == files
    for fig, path in figures:
        with open(path, "rb") as f:
            assert f.read(8) == PNG_MAGIC
        assert fig.get_suptitle() or len(fig.axes) == 1, path
        for ax in fig.axes:
            assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title(), path
            assert ax.get_legend() is not None, path


def test_lr_effects_demo(tmp_path, drawn):
    result = demos.lr_effects(tmp_path, quick=True)
    assert_legible(drawn, result["files"])
    runs = result["runs"]
    assert runs["too_large"]["diverged"] and runs["too_large"]["final_loss"] > 1e9
    assert not runs["good"]["diverged"] and runs["good"]["final_loss"] < 1e-15
    assert not runs["too_small"]["diverged"] and runs["too_small"]["moved"] < 1e-6
    assert runs["too_small"]["final_loss"] == pytest.approx(25.0, abs=1e-5)
    json.dumps(result)  # plain numbers, as the CLI and tests read them


def test_optimizers_demo(tmp_path, drawn):
    result = demos.optimizers(tmp_path, quick=True)
    assert_legible(drawn, result["files"])
    runs = result["runs"]
    assert list(runs) == ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"]
    start = demos.bowl(np.array([-7.0, 2.0]))
    for name, run in runs.items():
        assert not run["diverged"] and run["final_loss"] < start / 50, name
    # the textbook's picture: AdaGrad gets closest in 30 steps, SGD zig-zags in y (|y| shrinks, x lags)
    assert min(runs, key=lambda n: runs[n]["final_loss"]) == "AdaGrad"
    json.dumps(result)


def test_local_minima_demo(tmp_path, drawn):
    result = demos.local_minima(tmp_path, quick=True)
    assert_legible(drawn, result["files"])
    gd, momentum = result["runs"]["GD"], result["runs"]["Momentum"]
    assert gd["minimum"] == "local" and gd["final_x"] == pytest.approx(result["local_minimum"], abs=1e-6)
    assert momentum["minimum"] == "global" and momentum["final_x"] == pytest.approx(result["global_minimum"], abs=1e-3)
    assert gd["leftmost_x"] > result["barrier"] > momentum["leftmost_x"]
    json.dumps(result)


@pytest.mark.slow  # MNIST
def test_mnist_optimizers_demo(tmp_path, drawn):
    result = demos.mnist_optimizers(tmp_path, quick=True)
    assert_legible(drawn, result["files"])
    assert result["iterations"] == demos.MNIST_QUICK_ITERATIONS
    assert list(result["runs"]) == list(demos.MNIST_LRS)
    for name, run in result["runs"].items():
        assert run["status"] == "completed", name
        assert run["first_loss"] > 2.0 and run["train_loss"] < 0.7, (name, run)
    json.dumps(result)


# -- optimizers training the MNIST 784-100-10 net --------------------------------------------------


@pytest.fixture(scope="module")
def mnist():
    return sl.data.load_mnist()


# (lr, bound): bound on the training loss (all 50,000 images) after 600 iterations of batch 100, seed 0;
# measured 0.279, 0.115, 0.114, 0.155, 0.169, 0.185, 0.185 on this machine.
MNIST_BOUNDS = {
    "sgd": (0.1, 0.33),
    "momentum": (0.1, 0.15),
    "nesterov": (0.1, 0.15),
    "adagrad": (0.03, 0.19),
    "rmsprop": (1e-3, 0.21),
    "adam": (1e-3, 0.22),
    "adamw": (1e-3, 0.22),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MNIST_BOUNDS))
def test_optimizer_trains_mnist_below_its_bound(mnist, name):
    from threadpoolctl import threadpool_limits

    lr, bound = MNIST_BOUNDS[name]
    model = sl.MLP([784, 100, 10], seed=0)
    with threadpool_limits(limits=1):
        history = sl.fit(model, mnist.train, get_optimizer(name, lr), batch_size=100, iterations=600, seed=0,
                         progress=False)
    assert history.status == "completed" and history.rows[-1]["iteration"] == 600
    assert history.iteration_loss[0] > 2.0  # the first mini-batch, before any step
    assert history.rows[-1]["train_loss"] < bound


# -- the command line ----------------------------------------------------------------------------------


def test_cli_demo_lr_effects(tmp_path):
    out = tmp_path / "pictures"
    done = subprocess.run([sys.executable, "-m", "sgdlab", "demo", "lr-effects", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    png = out / "lr_effects.png"
    assert done.stdout.split() == [str(png)]
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 20_000


def test_cli_train_adam_with_cosine_schedule(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "sgdlab", "train", "--dataset", "digits", "--optimizer", "adam",
                           "--lr", "1e-3", "--schedule", "cosine", "--epochs", "5", "--out", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    config = json.loads((out / "config.json").read_text())
    assert (config["optimizer"], config["lr"], config["schedule"]) == ("adam", 1e-3, "cosine")
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5]
    total = int(rows[-1]["iteration"])
    for row in rows:  # lr of the epoch's last iteration (iteration - 1, counted from 0) on the cosine
        expected = 0.5e-3 * (1 + math.cos(math.pi * (int(row["iteration"]) - 1) / total))
        assert float(row["lr"]) == pytest.approx(expected, rel=1e-5)
    losses = [float(r["train_loss"]) for r in rows]
    assert all(b < a for a, b in zip(losses, losses[1:])) and losses[-1] < 2.0
    assert json.loads((out / "summary.json").read_text())["status"] == "completed"


def test_cli_bad_lr_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "sgdlab", "train", "--dataset", "digits", "--optimizer", "adam",
                           "--lr", "-1", "--out", str(tmp_path / "r")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("sgdlab: error:") and "lr" in done.stderr and len(done.stderr.splitlines()) == 1

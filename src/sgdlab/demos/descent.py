"""Pictures of step 3: how the learning rate, the update rule and local minima shape gradient descent.

Every path is ``descent.minimize`` with the tutorial's numerical gradient; the
MNIST curves are ``fit`` on the 784-100-10 net.  Each demo returns the numbers
its pictures claim (final losses, divergence, which minimum a path ended in).
"""

import numpy as np

from ..descent import minimize
from ..optimizers import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop, get_optimizer
from . import save_figure, show_figures
from .gradients import tutorial_function

COLORS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink"]

# lr-effects: the tutorial's start and step count; 1.05 is just past the stability limit lr < 1 of
# f = x0² + x1² (each step multiplies x by 1 - 2·lr = -1.1), so the divergence stays on the picture.
LR_START, LR_STEPS = (-3.0, 4.0), 100
LEARNING_RATES = {"too_small": 1e-10, "good": 0.1, "too_large": 1.05}

# optimizers: the textbook's comparison on x²/20 + y² from (-7, 2), 30 steps, its learning rates.
BOWL_START, BOWL_STEPS = (-7.0, 2.0), 30
BOWL_OPTIMIZERS = {
    "SGD": lambda: SGD(lr=0.95),
    "Momentum": lambda: Momentum(lr=0.1, momentum=0.9),
    "Nesterov": lambda: Nesterov(lr=0.1, momentum=0.9),
    "AdaGrad": lambda: AdaGrad(lr=1.5),
    "RMSprop": lambda: RMSprop(lr=0.1),
    "Adam": lambda: Adam(lr=0.3),
}

# local-minima: f(x) = x⁴ - 4x² + x has a local minimum near 1.35 and the global one near -1.47.
MINIMA_START, MINIMA_LR, MINIMA_MOMENTUM, MINIMA_STEPS = 2.5, 0.01, 0.9, 200

# mnist-optimizers: one lr per optimizer (the best of benchmarks/optimizer_comparison.py's grid).
MNIST_LRS = {"sgd": 0.3, "momentum": 0.1, "nesterov": 0.1, "adagrad": 0.1, "rmsprop": 3e-3, "adam": 3e-3,
             "adamw": 3e-3}
MNIST_ITERATIONS, MNIST_QUICK_ITERATIONS, MNIST_BATCH = 1500, 100, 100


def bowl(x):
    """f(x, y) = x²/20 + y², the textbook's elongated bowl."""
    return x[0] ** 2 / 20 + x[1] ** 2


def double_well(x):
    """f(x) = x⁴ - 4x² + x: a local minimum near x = 1.35, the global one near x = -1.47."""
    x = x[0]
    return x ** 4 - 4 * x ** 2 + x


def double_well_minima():
    """(local, global, barrier): the stationary points of f, from the roots of f'(x) = 4x³ - 8x + 1."""
    roots = np.sort(np.roots([4.0, 0.0, -8.0, 1.0]).real)
    return float(roots[2]), float(roots[0]), float(roots[1])


def _loss_axes(ax, f_label, title):
    """Labels, grid and legend of a loss-per-step panel (log y)."""
    ax.set_xlabel("step")
    ax.set_ylabel(f"{f_label} (log scale)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)


def _contours(ax, f, xlim, ylim, levels):
    xs, ys = np.linspace(*xlim, 200), np.linspace(*ylim, 200)
    X, Y = np.meshgrid(xs, ys)
    cs = ax.contour(X, Y, f(np.stack([X, Y])), levels=levels, colors="0.55", linewidths=0.8)
    ax.clabel(cs, fontsize=7, fmt="%g")
    ax.plot([0], [0], "k*", markersize=11, label="minimum (0, 0)")
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel("x0")
    ax.set_ylabel("x1")


def lr_effects(out_dir, show=False, quick=False):
    """GD on x0² + x1² from (-3, 4) with a too-small, a good and a too-large lr: paths and loss per step."""
    from ..plots import _figure

    paths = {name: minimize(tutorial_function, LR_START, SGD(lr), LR_STEPS) for name, lr in LEARNING_RATES.items()}
    fig = _figure(19.0, 5.2)
    axes = fig.subplots(1, 4)
    right = axes[3]
    for ax, color, (name, path) in zip(axes, COLORS, paths.items()):
        label = f"lr={LEARNING_RATES[name]:g} ({name.replace('_', ' ')})"
        _contours(ax, tutorial_function, (-8, 8), (-8, 8), [1, 4, 9, 16, 25, 49])
        ax.plot(path.points[:, 0], path.points[:, 1], "o-", color=color, markersize=3, linewidth=1, label=label)
        ax.plot(*LR_START, "ks", markersize=7, label=f"start {LR_START}")
        ax.set_aspect("equal")
        ax.set_title(f"{label}: f = {path.f:.3g} after {LR_STEPS} steps\n"
                     f"moved {path.distances(LR_START)[-1]:.3g} from the start", fontsize=10)
        ax.legend(loc="lower left", fontsize=8)
        right.semilogy(np.arange(LR_STEPS + 1), path.values, color=color, label=label)
    _loss_axes(right, "f(x0, x1)", "Loss per step: crawls, converges, diverges")
    fig.suptitle("Learning-rate effects on f(x0, x1) = x0² + x1²")
    files = [save_figure(fig, out_dir, "lr_effects.png")]
    show_figures(files, show)
    runs = {name: {"lr": LEARNING_RATES[name], "final_x": path.x.tolist(), "final_loss": path.f,
                   "start_loss": float(path.values[0]), "moved": float(path.distances(LR_START)[-1]),
                   "diverged": path.diverged} for name, path in paths.items()}
    return {"files": files, "start": list(LR_START), "steps": LR_STEPS, "runs": runs}


def optimizers(out_dir, show=False, quick=False):
    """Six update rules on x²/20 + y² from (-7, 2), 30 steps each: paths over contours, and loss per step."""
    from ..plots import _figure

    paths = {name: minimize(bowl, BOWL_START, make(), BOWL_STEPS) for name, make in BOWL_OPTIMIZERS.items()}
    fig = _figure(15.0, 8.0)
    axes = fig.subplots(2, 3).ravel()
    for ax, color, (name, path) in zip(axes, COLORS, paths.items()):
        _contours(ax, bowl, (-10, 10), (-5, 5), [0.25, 1, 2.5, 5, 10, 20])
        optimizer = BOWL_OPTIMIZERS[name]()
        ax.plot(path.points[:, 0], path.points[:, 1], "o-", color=color, markersize=3, linewidth=1,
                label=f"{name} lr={optimizer.lr:g}")
        ax.plot(*BOWL_START, "ks", markersize=6, label=f"start {BOWL_START}")
        ax.set_title(f"{name}: f = {path.f:.3g} after {BOWL_STEPS} steps", fontsize=10)
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle("Update rules on f(x, y) = x²/20 + y² (the textbook's comparison)")
    files = [save_figure(fig, out_dir, "optimizers_paths.png")]

    fig = _figure(7.5, 4.5)
    ax = fig.subplots()
    for color, (name, path) in zip(COLORS, paths.items()):
        ax.semilogy(np.arange(BOWL_STEPS + 1), path.values, color=color, label=name)
    _loss_axes(ax, "f(x, y)", "Loss per step on x²/20 + y²")
    files.append(save_figure(fig, out_dir, "optimizers_loss.png"))
    show_figures(files, show)
    runs = {name: {"lr": BOWL_OPTIMIZERS[name]().lr, "final_x": path.x.tolist(), "final_loss": path.f,
                   "diverged": path.diverged} for name, path in paths.items()}
    return {"files": files, "start": list(BOWL_START), "steps": BOWL_STEPS, "runs": runs}


def local_minima(out_dir, show=False, quick=False):
    """GD stalls in the local minimum of x⁴ - 4x² + x; Momentum with the same lr rolls over into the global one."""
    from ..plots import _figure

    local, global_, barrier = double_well_minima()
    rules = {"GD": SGD(lr=MINIMA_LR), "Momentum": Momentum(lr=MINIMA_LR, momentum=MINIMA_MOMENTUM)}
    paths = {name: minimize(double_well, [MINIMA_START], opt, MINIMA_STEPS) for name, opt in rules.items()}

    def basin(x):
        return "global" if x < barrier else "local"

    fig = _figure(13.0, 5.0)
    left, right = fig.subplots(1, 2)
    xs = np.linspace(-2.3, 2.7, 400)
    left.plot(xs, double_well([xs]), color="0.4", label="f(x) = x⁴ - 4x² + x")
    for name, x, marker in (("local", local, "v"), ("global", global_, "*")):
        left.plot([x], double_well([x]), marker, color="k", markersize=11, label=f"{name} minimum x={x:.3f}")
        right.axhline(x, color="k", linestyle=":" if name == "local" else "--", linewidth=1,
                      label=f"{name} minimum x={x:.3f}")
    for color, (name, path) in zip(COLORS, paths.items()):
        label = f"{name} lr={MINIMA_LR:g}" + (f", momentum {MINIMA_MOMENTUM:g}" if name == "Momentum" else "")
        left.plot(path.points[:, 0], path.values, "o-", color=color, markersize=3, linewidth=0.8, alpha=0.8,
                  label=f"{label}: ends in the {basin(path.x[0])} minimum")
        right.plot(np.arange(MINIMA_STEPS + 1), path.points[:, 0], color=color, label=label)
    left.set_ylim(-7, 16)
    left.set_xlabel("x")
    left.set_ylabel("f(x)")
    left.set_title(f"Paths from x = {MINIMA_START:g}")
    left.legend(loc="upper center", fontsize=8)
    left.grid(alpha=0.3)
    right.set_xlabel("step")
    right.set_ylabel("x")
    right.set_title("x per step")
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    fig.suptitle("A local minimum: plain gradient descent stalls, Momentum escapes")
    files = [save_figure(fig, out_dir, "local_minima.png")]
    show_figures(files, show)
    runs = {name: {"final_x": float(path.x[0]), "final_loss": path.f, "minimum": basin(path.x[0]),
                   "leftmost_x": float(path.points[:, 0].min())} for name, path in paths.items()}
    return {"files": files, "start": MINIMA_START, "lr": MINIMA_LR, "momentum": MINIMA_MOMENTUM,
            "steps": MINIMA_STEPS, "local_minimum": local, "global_minimum": global_, "barrier": barrier,
            "runs": runs}


def mnist_optimizers(out_dir, show=False, quick=False):
    """Loss per iteration of each optimizer training the same 784-100-10 net on MNIST for the same iterations."""
    from threadpoolctl import threadpool_limits

    from ..data import load_mnist
    from ..model import MLP
    from ..plots import _figure, smooth
    from ..training import fit

    data = load_mnist()
    iterations = MNIST_QUICK_ITERATIONS if quick else MNIST_ITERATIONS
    histories = {}
    with threadpool_limits(limits=1):  # batch 100 x 100 units: one BLAS thread is fastest
        for name, lr in MNIST_LRS.items():
            model = MLP([784, 100, 10], seed=0)
            histories[name] = fit(model, data.train, get_optimizer(name, lr), batch_size=MNIST_BATCH,
                                  iterations=iterations, seed=0, progress=False,
                                  train_metrics="full")  # the legend's final train loss: the whole set
    window = max(1, iterations // 30)
    fig = _figure(9.0, 5.5)
    ax = fig.subplots()
    for color, (name, history) in zip(COLORS, histories.items()):
        losses = np.asarray(history.iteration_loss)
        ax.semilogy(np.arange(1, len(losses) + 1), smooth(losses, window), color=color,
                    label=f"{name} lr={MNIST_LRS[name]:g}: train loss {history.rows[-1]['train_loss']:.3f}")
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"mini-batch loss (mean of {window}, log scale)")
    ax.set_title(f"Optimizers on MNIST: 784-100-10 ReLU, batch {MNIST_BATCH}, {iterations} iterations "
                 f"({iterations * MNIST_BATCH / len(data.train.x):.3g} epochs), same batches for all")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    files = [save_figure(fig, out_dir, "mnist_optimizers.png")]
    show_figures(files, show)
    runs = {name: {"lr": MNIST_LRS[name], "train_loss": float(history.rows[-1]["train_loss"]),
                   "train_accuracy": float(history.rows[-1]["train_acc"]),
                   "first_loss": float(history.iteration_loss[0]), "status": history.status}
            for name, history in histories.items()}
    return {"files": files, "iterations": iterations, "batch_size": MNIST_BATCH, "runs": runs}

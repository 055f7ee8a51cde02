"""Pictures of step 2: the gradient field of f(x0, x1) = x0² + x1², and how the error of a
numerical derivative depends on h (truncation against rounding: the V)."""

import numpy as np

from ..gradients import EPS, numerical_gradient
from . import save_figure, show_figures


def tutorial_function(x):
    """f(x0, x1) = x0² + x1² (the tutorial's function_2)."""
    return x[0] ** 2 + x[1] ** 2


def gradient_field(out_dir, show=False, quick=False):
    """Arrows of -∇f, by numerical_gradient at every grid point, beside the surface of f."""
    from ..plots import _figure

    axis = np.arange(-2, 2.5, 0.25)
    X0, X1 = np.meshgrid(axis, axis)
    points = np.stack([X0.ravel(), X1.ravel()], axis=1)
    grads = np.array([numerical_gradient(tutorial_function, p.copy()) for p in points])
    max_error = float(np.max(np.abs(grads - 2 * points)))
    away = np.any(points != 0, axis=1)
    toward = np.einsum("ij,ij->i", -grads[away], -points[away]) > 0
    at_3_4 = numerical_gradient(tutorial_function, np.array([3.0, 4.0]))

    fig = _figure(12.0, 5.2)
    surface = fig.add_subplot(1, 2, 1, projection="3d")
    fine = np.linspace(-2, 2, 41)
    F0, F1 = np.meshgrid(fine, fine)
    surface.plot_surface(F0, F1, F0 ** 2 + F1 ** 2, cmap="viridis", alpha=0.85, linewidth=0)
    surface.scatter([0], [0], [0], color="red", s=30, label="minimum (0, 0)")
    surface.set_xlabel("x0")
    surface.set_ylabel("x1")
    surface.set_zlabel("f(x0, x1)")
    surface.set_title("f(x0, x1) = x0² + x1²")
    surface.legend(loc="upper left")

    field = fig.add_subplot(1, 2, 2)
    field.quiver(points[:, 0], points[:, 1], -grads[:, 0], -grads[:, 1], np.hypot(grads[:, 0], grads[:, 1]),
                 angles="xy", cmap="viridis", label="-∇f (numerical, central differences)")
    field.plot([0], [0], "r*", markersize=12, label="minimum (0, 0)")
    field.set_xlim(-2.3, 2.3)
    field.set_ylim(-2.3, 2.3)
    field.set_aspect("equal")
    field.set_xlabel("x0")
    field.set_ylabel("x1")
    field.set_title("The negative gradient points to the minimum")
    field.legend(loc="upper right", fontsize=8)
    field.grid(alpha=0.3)
    path = save_figure(fig, out_dir, "gradient_field.png")
    show_figures([path], show)
    return {"files": [path], "grid_points": int(len(points)), "max_error": max_error,
            "fraction_pointing_to_minimum": float(np.mean(toward)), "gradient_at_3_4": at_3_4.tolist()}


def _model_errors(hs):
    """max |numerical - backprop| / max |backprop| of a small float64 MLP, for each h."""
    from ..data import make_spirals
    from ..model import MLP

    data = make_spirals(n_samples=60, n_classes=3, noise=0.1, seed=0)
    x, t = data.batch(np.arange(60))
    x = x.astype(np.float64)
    model = MLP([2, 8, 3], activation="tanh", dtype=np.float64, seed=0)
    _, exact = model.gradient(x, t)
    exact = exact.copy()
    scale = np.max(np.abs(exact))

    def error(h, method):
        return float(np.max(np.abs(model.numerical_gradient(x, t, h=float(h), method=method) - exact)) / scale)

    return [error(h, "central") for h in hs], [error(h, "complex") for h in hs]


def numerical_error(out_dir, show=False, quick=False):
    """Error of forward, central and complex-step derivatives of exp at 1 as h goes 1e-1 -> 1e-16 (log-log)."""
    from ..plots import _figure

    hs = np.logspace(-1, -16, 31 if quick else 61)
    x, exact = 1.0, np.e
    forward = np.abs((np.exp(x + hs) - np.exp(x)) / hs - exact)
    central = np.abs((np.exp(x + hs) - np.exp(x - hs)) / (2 * hs) - exact)
    complex_hs = np.logspace(-1, -20, 39 if quick else 77)
    complex_step = np.abs(np.exp(x + 1j * complex_hs).imag / complex_hs - exact)
    complex_at_1e_20 = float(abs(np.exp(x + 1e-20j).imag / 1e-20 - exact))
    floor = 1e-18  # where an error of exactly 0 is drawn on the log axis

    best = int(np.argmin(central))
    best_forward = int(np.argmin(forward))
    fig = _figure(12.0, 5.0)
    ax = fig.add_subplot(1, 2, 1)
    ax.loglog(hs, np.maximum(forward, floor), "o-", markersize=3, label="forward (f(x+h) - f(x)) / h")
    ax.loglog(hs, np.maximum(central, floor), "s-", markersize=3, label="central (f(x+h) - f(x-h)) / 2h")
    ax.loglog(complex_hs, np.maximum(complex_step, floor), "^-", markersize=3, label="complex step Im f(x+ih) / h")
    ax.loglog(hs, exact * hs ** 2 / 6 + EPS * exact / hs, "k:", linewidth=1,
              label="h²·f'''/6 + eps·f/h (central, predicted)")
    ax.loglog(hs, exact * hs / 2 + EPS * exact / hs, "k--", linewidth=0.8,
              label="h·f''/2 + eps·f/h (forward, predicted)")
    ax.axvline(hs[best], color="tab:orange", alpha=0.4)
    ax.annotate(f"central best h ≈ {hs[best]:.0e}\n(≈ cbrt(eps) = {EPS ** (1 / 3):.0e})",
                (hs[best], central[best]), textcoords="offset points", xytext=(10, -30), fontsize=8)
    ax.text(0.02, 0.02, "h = 1e-50: x + h == x, the difference is 0 (error 100%)\n"
                        f"errors of exactly 0 are drawn at {floor:g}", transform=ax.transAxes, fontsize=7)
    ax.invert_xaxis()
    ax.set_xlabel("h")
    ax.set_ylabel("|numerical - exact| derivative")
    ax.set_title("d/dx exp(x) at x = 1 in float64: truncation vs rounding")
    ax.legend(fontsize=7, loc="upper right")
    ax.grid(alpha=0.3, which="both")

    model_hs = np.logspace(-1, -12, 12 if quick else 23)
    model_central, model_complex = _model_errors(model_hs)
    ax2 = fig.add_subplot(1, 2, 2)
    ax2.loglog(model_hs, np.maximum(model_central, floor), "s-", markersize=3, label="central differences")
    ax2.loglog(model_hs, np.maximum(model_complex, floor), "^-", markersize=3, label="complex step")
    ax2.axvline(EPS ** (1 / 3), color="tab:orange", alpha=0.4, label="default h = cbrt(eps)·max(1, |p|)")
    ax2.invert_xaxis()
    ax2.set_xlabel("h")
    ax2.set_ylabel("max |numerical - backprop| / max |backprop|")
    ax2.set_title("The whole gradient of a 2-8-3 MLP (spirals, 60 samples)")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3, which="both")
    path = save_figure(fig, out_dir, "numerical_error.png")
    show_figures([path], show)
    at_1e_16 = int(np.argmin(np.abs(np.log10(hs) + 16)))
    return {"files": [path], "h": hs.tolist(), "forward_error": forward.tolist(), "central_error": central.tolist(),
            "complex_h": complex_hs.tolist(), "complex_error": complex_step.tolist(),
            "best_h_central": float(hs[best]), "min_error_central": float(central[best]),
            "best_h_forward": float(hs[best_forward]), "min_error_forward": float(forward[best_forward]),
            "central_error_at_1e-16": float(central[at_1e_16]), "complex_error_at_1e-20": complex_at_1e_20,
            "model_h": model_hs.tolist(), "model_central_error": model_central,
            "model_complex_error": model_complex}

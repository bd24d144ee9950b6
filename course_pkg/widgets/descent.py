"""Gradient descent and the negative gradient: the pictures of the first chapter.

The chapter follows sections 1-2 of ``001_ce18104b0c2237dd.txt`` (the update rule (1.1) and the
Taylor argument (2.1)) and the comments of ``000_4a3fe56ce2bc8b6e.txt`` (the directional
derivative). Its example landscape is

    F(x, y) = x^2 / 4 + y^2 / 2 + 4/5 sin(x) cos(y),

a bowl with a ripple, and its step-size experiment runs gradient descent on a quadratic
E(w) = 1/2 w^T H w, for which the update (1.1) is the linear map w <- (I - eta H) w.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from course_pkg.widgets import explorer

RIPPLE = 0.8
"""The amplitude of the sin(x) cos(y) term of the landscape F."""

H_EXAMPLE = np.array([[2.5, 1.5], [1.5, 2.5]])
"""The Hessian of the quadratic of the step-size experiment: eigenvalues 1 and 4."""

W0_EXAMPLE = np.array([-1.6, 0.6])
"""The starting point of the step-size experiment."""

POINT_X = [-2.7, -2.1, -1.5, -0.9, -0.3, 0.3, 0.9, 1.5, 2.1, 2.7]
POINT_Y = [-2.25, -1.75, -1.25, -0.75, -0.25, 0.25, 0.75, 1.25, 1.75, 2.25]
"""The grid of the point (x, y) in :func:`gradient_explorer`: 10 x 10 positions."""

ETAS = [0.02, 0.04, 0.06, 0.08, 0.10, 0.12, 0.14, 0.16, 0.18, 0.20, 0.22, 0.24, 0.26, 0.28,
        0.30, 0.32, 0.34, 0.36, 0.38, 0.40, 0.42, 0.44, 0.46, 0.48, 0.50, 0.52, 0.54, 0.56]
"""The 28 learning rates of :func:`step_size_explorer`, on both sides of eta* = 0.5."""


# -- the landscape F and its derivatives ----------------------------------------------------
def F(x: Any, y: Any) -> Any:
    """The example landscape F(x, y) = x^2/4 + y^2/2 + 0.8 sin(x) cos(y)."""
    return 0.25 * x**2 + 0.5 * y**2 + RIPPLE * np.sin(x) * np.cos(y)


def grad_F(x: Any, y: Any) -> np.ndarray:
    """The gradient (dF/dx, dF/dy), stacked along the first axis.

    dF/dx = x/2 + 0.8 cos(x) cos(y) and dF/dy = y - 0.8 sin(x) sin(y).
    """
    return np.stack([0.5 * x + RIPPLE * np.cos(x) * np.cos(y),
                     y - RIPPLE * np.sin(x) * np.sin(y)])


def hessian_F(x: float, y: float) -> np.ndarray:
    """The 2 x 2 matrix of second derivatives of F at (x, y): the second-order Taylor term."""
    sxcy = RIPPLE * np.sin(x) * np.cos(y)
    cxsy = RIPPLE * np.cos(x) * np.sin(y)
    return np.array([[0.5 - sxcy, -cxsy], [-cxsy, 1.0 - sxcy]])


def directional_derivative(x: float, y: float, theta: Any) -> Any:
    """D_v F(x, y) = v . grad F(x, y) for the unit vector v = (cos theta, sin theta).

    The limit of (F(r + h v) - F(r)) / h as h -> 0, in the comments of
    ``000_4a3fe56ce2bc8b6e.txt``.
    """
    gx, gy = grad_F(x, y)
    return np.cos(theta) * gx + np.sin(theta) * gy


def taylor_remainder(x: float, y: float, r: np.ndarray) -> float:
    """F(r0 + r) - F(r0) - grad F(r0) . r: what the first-order expansion (2.1) leaves out."""
    r = np.asarray(r, dtype=float)
    if r.shape != (2,):
        raise ValueError(f"expected a step r of shape (2,), got shape {r.shape}")
    return float(F(x + r[0], y + r[1]) - F(x, y) - grad_F(x, y) @ r)


# -- gradient descent on a quadratic ----------------------------------------------------------
def _check_hessian(H: Any) -> np.ndarray:
    H = np.asarray(H, dtype=float)
    if H.ndim != 2 or H.shape[0] != H.shape[1]:
        raise ValueError(f"expected a square matrix H, got shape {H.shape}")
    if not np.allclose(H, H.T):
        raise ValueError("expected a symmetric matrix H (the Hessian of a quadratic)")
    return H


def critical_learning_rate(H: Any) -> float:
    """eta* = 2 / lambda_max(H): descent on 1/2 w^T H w converges iff 0 < eta < eta*.

    Raises ValueError unless H is symmetric positive definite.
    """
    lam = np.linalg.eigvalsh(_check_hessian(H))
    if lam[0] <= 0:
        raise ValueError(f"expected a positive definite H, its eigenvalues are {lam}")
    return 2.0 / float(lam[-1])


def descend_quadratic(H: Any, w0: Any, eta: float, steps: int) -> np.ndarray:
    """Iterate eq. (1.1) on E(w) = 1/2 w^T H w: w_{t+1} = w_t - eta H w_t.

    Returns
    -------
    path
        Shape (steps + 1, d): w_0, w_1, ..., w_steps.
    """
    H = _check_hessian(H)
    w = np.asarray(w0, dtype=float)
    if w.shape != (H.shape[0],):
        raise ValueError(f"expected w0 of shape ({H.shape[0]},), got shape {w.shape}")
    if eta <= 0:
        raise ValueError(f"expected a positive learning rate eta, got {eta}")
    path = [w]
    for _ in range(int(steps)):
        w = w - eta * (H @ w)
        path.append(w)
    return np.asarray(path)


def quadratic_loss(H: Any, W: np.ndarray) -> np.ndarray:
    """E(w) = 1/2 w^T H w for each row w of W."""
    W = np.atleast_2d(W)
    return 0.5 * np.einsum("ni,ij,nj->n", W, np.asarray(H, dtype=float), W)


# -- the pictures -------------------------------------------------------------------------------
def _grid(n: int = 31, half: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(-half, half, n)
    return np.meshgrid(t, t)


def draw_landscape(x: float = 0.8, y: float = 1.5) -> Any:
    """The surface z = F(x, y) and its contour map side by side, with the gradient at (x, y).

    The black point sits on the surface; the red point is its shadow on the xy plane, where
    the blue arrow (the gradient) starts.
    """
    from matplotlib.figure import Figure

    X, Y = _grid()
    Z = F(X, Y)
    g = grad_F(x, y)
    arrow = 1.2 * g / max(1.0, float(np.linalg.norm(g)))
    fig = Figure(figsize=(8, 3.4))
    ax3 = fig.add_subplot(1, 2, 1, projection="3d")
    ax3.plot_surface(X, Y, Z, cmap="viridis", alpha=0.55, linewidth=0, rstride=1, cstride=1)
    ax3.plot([x], [y], [F(x, y)], "ko", ms=6)
    ax3.plot([x], [y], [Z.min()], "ro", ms=5)
    ax3.quiver(x, y, Z.min(), arrow[0], arrow[1], 0.0, color="tab:blue", linewidth=2)
    ax3.set(xlabel="x", ylabel="y", zlabel="F(x, y)", title="surface z = F(x, y)",
            xticks=[-3, 0, 3], yticks=[-3, 0, 3], zticks=[0, 2, 4, 6])
    ax2 = fig.add_subplot(1, 2, 2)
    ax2.contour(X, Y, Z, levels=14, cmap="viridis")
    ax2.plot([x], [y], "ro", ms=6)
    ax2.quiver([x], [y], [arrow[0]], [arrow[1]], color="tab:blue", angles="xy",
               scale_units="xy", scale=1, width=0.012)
    ax2.set(xlabel="x", ylabel="y", aspect="equal", xticks=[-3, 0, 3], yticks=[-3, 0, 3],
            title=f"contours, grad F = ({g[0]:.2f}, {g[1]:.2f})")
    fig.subplots_adjust(wspace=0.45)
    return fig


def gradient_explorer(static: bool | None = None) -> Any:
    """Move the point (x, y): its gradient on the surface and on the contour map."""
    controls = {"x": POINT_X, "y": POINT_Y}
    return explorer(draw_landscape, controls, {"x": 0.9, "y": 1.25}, static=static)


def draw_step_size(eta: float = 0.3, steps: int = 30) -> Any:
    """Descent on E(w) = 1/2 w^T H w with H = ``H_EXAMPLE`` for one learning rate eta.

    Left: the path on the contour map. Right: log10 E(w_t) against t, with the
    critical rate eta* = 2 / lambda_max = 0.5 in the title.
    """
    from matplotlib.figure import Figure

    H, eta_star = H_EXAMPLE, critical_learning_rate(H_EXAMPLE)
    path = descend_quadratic(H, W0_EXAMPLE, eta, steps)
    X, Y = _grid(41, 2.5)
    Z = quadratic_loss(H, np.column_stack([X.ravel(), Y.ravel()])).reshape(X.shape)
    fig = Figure(figsize=(8, 3.2))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.contour(X, Y, Z, levels=np.geomspace(0.02, 12, 10), cmap="viridis")
    ax1.plot(path[:, 0], path[:, 1], "o-", color="tab:red", ms=3, lw=1)
    ax1.set(xlim=(-2.5, 2.5), ylim=(-2.5, 2.5), aspect="equal", xlabel="$w_1$", ylabel="$w_2$",
            title=f"path, eta = {eta:g}", xticks=[-2, -1, 0, 1, 2], yticks=[-2, -1, 0, 1, 2])
    ax2.plot(np.log10(quadratic_loss(H, path)), "o-", ms=3, color="tab:red")
    ax2.set(xlabel="step t", ylabel="log10 E(w_t)", ylim=(-12, 4), xticks=[0, 10, 20, 30],
            yticks=[-12, -8, -4, 0, 4],
            title=f"eta / eta* = {eta / eta_star:.2f}")
    fig.subplots_adjust(wspace=0.35)
    return fig


def step_size_explorer(static: bool | None = None) -> Any:
    """Move the learning rate eta through convergence, oscillation and divergence."""
    controls = {"eta": ETAS}
    return explorer(draw_step_size, controls, {"eta": 0.24}, static=static)

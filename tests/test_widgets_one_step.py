"""The learning-rate explorer of the summary page: one step of (sum-step) and its first order."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from course_pkg.widgets import data_changed, figure_data, one_step


def test_the_curve_is_the_package_step_and_its_first_order_is_the_tangent():
    etas, after, loss, grad_sq = one_step.curve()
    net, X, Y = one_step.summary_problem()
    _, dW, db = net.loss_and_gradients(X, Y)
    i = 10
    stepped_W = [w - etas[i] * g for w, g in zip(net.weights, dW, strict=True)]
    stepped_b = [b - etas[i] * g for b, g in zip(net.biases, db, strict=True)]
    by_hand = type(net)(net.sizes, net.activation_names, net.loss_name, weights=stepped_W,
                        biases=stepped_b).loss(X, Y)
    assert after[i] == pytest.approx(by_hand, rel=1e-12)
    assert after[0] == pytest.approx(loss)
    # the derivative of the curve at eta = 0 is -||grad||^2 (the first-order term)
    h = 1e-6
    slope = (one_step.losses_after_step(net, X, Y, h) - loss) / h
    assert slope == pytest.approx(-grad_sq, rel=1e-4)
    # a long step raises the loss: the first order fails
    assert after[-1] > loss and np.min(after) < loss


def test_25_positions_and_every_frame_differs():
    assert len(one_step.ETAS) == 25
    ex = one_step.step_explorer(static=True)
    assert len(set(ex.frames.values())) == 25
    assert 'class="course-explorer"' in ex._repr_html_()


def test_live_explorer_redraws():
    pytest.importorskip("ipywidgets")
    ex = one_step.step_explorer(static=False)
    before = figure_data(ex.figure)
    ex.controls["eta"].value = one_step.ETAS[-1]
    assert data_changed(before, figure_data(ex.figure))


def test_the_summary_claims():
    """The best single step is near eta = 0.25; from about 0.5 on, one step raises the loss."""
    etas, after, loss, _ = one_step.curve()
    assert etas[np.argmin(after)] == pytest.approx(0.25, abs=0.02)
    rises = etas[after > loss]
    assert 0.45 < rises.min() < 0.5

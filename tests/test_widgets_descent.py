"""The explorers of the gradient-descent chapter: live controls redraw, static frames complete."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from course_pkg.widgets import data_changed, descent, figure_data


def test_gradient_explorer_live_redraws_for_x_and_y():
    pytest.importorskip("ipywidgets")
    ex = descent.gradient_explorer(static=False)
    assert list(ex.controls) == ["x", "y"]
    for name, value in (("x", descent.POINT_X[0]), ("y", descent.POINT_Y[0])):
        before = figure_data(ex.figure)
        ex.controls[name].value = value
        assert ex.values[name] == value
        assert data_changed(before, figure_data(ex.figure)), name


def test_gradient_explorer_arrow_is_the_gradient():
    fig = descent.draw_landscape(x=-1.2, y=1.5)
    contour_axes = fig.axes[1]
    quiver = [c for c in contour_axes.collections if hasattr(c, "U")][0]
    u = np.array([quiver.U[0], quiver.V[0]])
    g = descent.grad_F(-1.2, 1.5)
    np.testing.assert_allclose(u / np.linalg.norm(u), g / np.linalg.norm(g), atol=1e-12)
    plt.close(fig)


def test_gradient_explorer_static_frames():
    ex = descent.gradient_explorer(static=True)
    assert len(descent.POINT_X) >= 10 and len(descent.POINT_Y) >= 10
    assert len(ex.frames) == len(descent.POINT_X) * len(descent.POINT_Y)
    assert len(set(ex.frames.values())) == len(ex.frames)
    html = ex._repr_html_()
    assert 'class="course-explorer"' in html and html.count('type="range"') == 2
    # the browser test moves the first slider (x): its frames must differ
    assert ex.frames["0,2"] != ex.frames["1,2"]


def test_step_size_explorer_live_redraws():
    pytest.importorskip("ipywidgets")
    ex = descent.step_size_explorer(static=False)
    assert list(ex.controls) == ["eta"]
    before = figure_data(ex.figure)
    ex.controls["eta"].value = descent.ETAS[-1]
    assert data_changed(before, figure_data(ex.figure))


def test_step_size_explorer_static_frames_and_path():
    ex = descent.step_size_explorer(static=True)
    assert len(ex.frames) == len(descent.ETAS) >= 25
    assert min(descent.ETAS) < 0.5 < max(descent.ETAS)  # both sides of eta* = 2 / 4
    assert len(set(ex.frames.values())) == len(ex.frames)
    fig = descent.draw_step_size(eta=0.25, steps=30)
    path_line = fig.axes[0].lines[0]
    np.testing.assert_allclose(
        path_line.get_xydata(),
        descent.descend_quadratic(descent.H_EXAMPLE, descent.W0_EXAMPLE, 0.25, 30),
    )
    plt.close(fig)

"""The saturation explorer of the matrix-form chapter: live controls redraw, static frames."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from course_pkg.widgets import data_changed, figure_data, saturation


def test_live_explorer_redraws_for_each_control():
    pytest.importorskip("ipywidgets")
    ex = saturation.depth_explorer(static=False)
    assert list(ex.controls) == ["depth", "activation"]
    for name, value in (("depth", 2), ("activation", "relu")):
        before = figure_data(ex.figure)
        ex.controls[name].value = value
        assert ex.values[name] == value
        assert data_changed(before, figure_data(ex.figure)), name


def test_static_explorer_has_every_frame():
    ex = saturation.depth_explorer(static=True)
    assert len(ex.frames) == len(saturation.DEPTHS) * len(saturation.ACTIVATIONS)
    assert len(set(ex.frames.values())) == len(ex.frames)
    html = ex._repr_html_()
    assert 'class="course-explorer"' in html
    assert html.count('type="range"') == 2


def test_draw_norms_plots_one_point_per_layer():
    fig = saturation.draw_norms(6, "sigmoid")
    (ax,) = fig.axes
    assert len(ax.lines) == len(saturation.ACTIVATIONS) + 1
    for line in ax.lines:
        assert len(line.get_xdata()) == 6 + 1
    chosen, reference = ax.lines[-2].get_ydata(), ax.lines[-1].get_ydata()
    np.testing.assert_allclose(chosen, saturation.layer_norms(6, "sigmoid"))
    np.testing.assert_allclose(reference[:-1] / reference[1:], 0.25)
    matplotlib.pyplot.close(fig)

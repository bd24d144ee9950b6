"""The Bishop-fit explorer of the tanh chapter: live controls redraw, static frames are complete."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest

from course_pkg.widgets import data_changed, figure_data, tanh_fit


def test_live_explorer_redraws_for_each_control():
    pytest.importorskip("ipywidgets")
    ex = tanh_fit.training_explorer(static=False)
    assert list(ex.controls) == ["epoch", "target"]
    for name, value in (("epoch", tanh_fit.EPOCHS[-1]), ("target", "step")):
        before = figure_data(ex.figure)
        ex.controls[name].value = value
        assert ex.values[name] == value
        assert data_changed(before, figure_data(ex.figure)), name


def test_static_explorer_has_every_frame():
    ex = tanh_fit.training_explorer(static=True)
    assert len(ex.frames) == len(tanh_fit.EPOCHS) * len(tanh_fit.TARGETS)
    assert len(set(ex.frames.values())) == len(ex.frames)     # every picture differs
    html = ex._repr_html_()
    assert 'class="course-explorer"' in html
    assert html.count('type="range"') == 2


def test_draw_fit_shows_data_fit_and_three_hidden_units():
    fig = tanh_fit.draw_fit(tanh_fit.EPOCHS[-1], "sin")
    left, right = fig.axes
    assert len(left.lines) == 2 and len(right.lines) == tanh_fit.HIDDEN_UNITS
    assert left.get_xlabel() == "x"
    matplotlib.pyplot.close(fig)

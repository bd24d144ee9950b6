"""The training explorer of the identity-sigmoid chapter: live redraw and static frames."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from course_pkg import identity_sigmoid as isg
from course_pkg.widgets import data_changed, figure_data
from course_pkg.widgets import sigmoid as sg


def test_training_explorer_live_redraws_for_mu_and_w0():
    pytest.importorskip("ipywidgets")
    ex = sg.training_explorer(static=False)
    assert list(ex.controls) == ["mu", "w0"]
    for name, value in (("mu", sg.MUS[0]), ("w0", sg.W0S[0])):
        before = figure_data(ex.figure)
        ex.controls[name].value = value
        assert ex.values[name] == value
        assert data_changed(before, figure_data(ex.figure)), name


def test_training_explorer_static_frames():
    ex = sg.training_explorer(static=True)
    assert len(ex.frames) == len(sg.MUS) * len(sg.W0S)
    assert len(sg.MUS) >= 10 and len(sg.W0S) >= 10
    assert len(set(ex.frames.values())) == len(ex.frames)
    html = ex._repr_html_()
    assert 'class="course-explorer"' in html and html.count('type="range"') == 2
    assert ex.frames["0,1"] != ex.frames["1,1"]       # the first slider (mu) changes the picture


def test_draw_training_plots_the_package_iterates():
    fig = sg.draw_training(mu=3.0, w0=-4.0, steps=400)
    marks = fig.axes[0].lines[2].get_xydata()
    path = isg.train(-4.0, 3.0, 400)[::8]
    np.testing.assert_allclose(marks[:, 0], path)
    np.testing.assert_allclose(marks[:, 1], sg.error(path, 1.0))
    plt.close(fig)

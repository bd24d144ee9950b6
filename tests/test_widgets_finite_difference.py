"""The tangent-and-secant explorers of the worked example and of the gradient-checking lesson."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

import course_pkg as cp
from course_pkg.widgets import data_changed, figure_data
from course_pkg.widgets import finite_difference as fd


def test_the_tangent_is_back_propagation_and_the_secant_a_central_difference():
    p = fd.worked_example()
    assert round(p.slope, 4) == 0.0173                       # row B11 of the worked example
    fd_W, _ = cp.finite_difference_gradients(
        cp.Network([2, 2, 2], "sigmoid", weights=[np.array([[0.5, -1.0], [1.0, 1.0]]),
                                                  np.array([[1.0, -1.0], [0.5, 0.5]])],
                   biases=[np.array([0.0, -0.5]), np.zeros(2)]),
        np.array([[1.0, 0.5]]), np.array([[0.0, 1.0]]))
    assert p.slope == pytest.approx(fd_W[0][0, 0], abs=1e-10)
    assert fd.central_difference(p, 0.01) == pytest.approx(0.0173, abs=5e-5)
    q = fd.checking_example()
    assert abs(fd.central_difference(q, 1e-5) - q.slope) < 1e-9       # near the optimum
    assert abs(fd.central_difference(q, 1.0) - q.slope) > 1e-4         # truncation
    assert p.f(p.t0) == pytest.approx(0.1594290796791072, rel=1e-12)


def test_draw_secant_draws_the_three_slopes():
    p = fd.checking_example()
    fig = fd.draw_secant(p, 1e-2)
    (ax,) = fig.axes
    curve, tangent, secant, _ = ax.lines
    s = tangent.get_xdata() * 1e-2
    np.testing.assert_allclose(tangent.get_ydata(), p.slope * s)
    slope = np.polyfit(s, secant.get_ydata(), 1)[0]
    assert slope == pytest.approx(fd.central_difference(p, 1e-2), rel=1e-9)
    assert all(t.get_fontsize() >= fd.FONT for t in ax.get_xticklabels() + ax.get_yticklabels())
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="positive"):
        fd.draw_secant(p, 0.0)


def test_the_grids_offer_at_least_25_positions():
    assert len(fd.WORKED_STEPS) >= 25 and len(fd.CHECK_STEPS) >= 25
    assert fd.CHECK_STEPS[0] == pytest.approx(1e-13) and fd.CHECK_STEPS[-1] == pytest.approx(1.0)


def test_static_explorers_have_every_frame_and_each_differs():
    ex = fd.worked_example_explorer(static=True)
    assert len(ex.frames) == len(fd.WORKED_STEPS) == len(set(ex.frames.values()))
    assert 'class="course-explorer"' in ex._repr_html_()


def test_live_explorer_redraws():
    pytest.importorskip("ipywidgets")
    ex = fd.step_explorer(static=False)
    before = figure_data(ex.figure)
    ex.controls["h"].value = fd.CHECK_STEPS[-1]
    assert data_changed(before, figure_data(ex.figure))


def test_the_chapter_claims_about_the_explorers():
    """worked_example.md: four decimals up to h = 0.1, not at 0.2; gradient_checking.md: the
    secant leaves the tangent at h = 1, coincides at 1e-5, is wrong in the 4th digit at 1e-13."""
    p = fd.worked_example()
    for h in (h for h in fd.WORKED_STEPS if h <= 0.1):
        assert round(fd.central_difference(p, h), 4) == round(p.slope, 4) == 0.0173
    assert round(fd.central_difference(p, 0.2), 4) != 0.0173
    q = fd.checking_example()
    assert abs(fd.central_difference(q, 1.0) / q.slope - 1) > 0.1
    assert abs(fd.central_difference(q, 1e-5) / q.slope - 1) < 1e-8
    rel = abs(fd.central_difference(q, 1e-13) / q.slope - 1)
    assert 1e-4 < rel < 1e-2
    secant = fd.central_difference(q, 1e-13)
    assert f"{secant:.3g}" == f"{q.slope:.3g}" and f"{secant:.4g}" != f"{q.slope:.4g}"

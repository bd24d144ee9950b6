"""The explorer and figures of chapter 6 (course_pkg.widgets.cost)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from course_pkg.widgets import cost, data_changed, figure_data


def test_cost_explorer_live_redraws_for_width_and_depth():
    pytest.importorskip("ipywidgets")
    ex = cost.cost_explorer(static=False)
    assert list(ex.controls) == ["width", "depth"]
    for name, value in (("width", 128), ("depth", 3), ("width", 4)):
        before = figure_data(ex.figure)
        ex.controls[name].value = value
        assert ex.values[name] == value
        assert data_changed(before, figure_data(ex.figure)), name
    plt.close("all")


def test_cost_explorer_static_has_every_frame_and_the_width_changes_the_picture():
    ex = cost.cost_explorer(static=True)
    assert len(ex.frames) == len(cost.WIDTHS) * len(cost.DEPTHS)
    assert len(cost.WIDTHS) >= 10 and len(cost.DEPTHS) >= 10
    assert ex.frames["0,1"] != ex.frames["1,1"]  # the first control (width) changes it
    assert 'class="course-explorer"' in ex._repr_html_()


def test_cost_figure_marks_the_counts_of_the_chosen_network():
    fig = cost.draw(width=32, depth=2)
    marker = fig.axes[0].lines[-1].get_xydata()
    sizes = cost.widget_sizes(32, 2)
    c = cost.gradient_cost(sizes, cost.BATCH)
    np.testing.assert_allclose(marker, [[cost.parameter_count(sizes), c["backprop"]],
                                        [cost.parameter_count(sizes), c["finite_differences"]]])
    # the two curves have log-log slopes near 1 and 2 over the large widths
    bp, fd = (np.asarray(line.get_xydata()) for line in fig.axes[0].lines[:2])
    big = bp[:, 0] > 1e4
    assert cost.loglog_slope(bp[big, 0], bp[big, 1]) == pytest.approx(1.0, abs=0.05)
    assert cost.loglog_slope(fd[big, 0], fd[big, 1]) == pytest.approx(2.0, abs=0.05)
    heights = [bar.get_height() for bar in fig.axes[1].patches]
    forward, backward = cost.multiply_adds(sizes, cost.BATCH)
    np.testing.assert_array_equal(heights, [*forward, *backward])
    plt.close(fig)
    with pytest.raises(ValueError, match="width must be one of"):
        cost.draw(width=5)


def test_timing_and_gpu_figures_draw_what_they_are_given():
    P = np.array([100.0, 1000.0, 10000.0])
    fig = cost.draw_timings(P, [1e-4, 2e-4, 1e-3], [5e-5, 1e-4, 4e-4], [0.01, 0.2, np.nan])
    lines = fig.axes[0].lines
    assert len(lines) == 3
    assert lines[1].get_xydata().shape == (2, 2)  # only the measured finite differences
    np.testing.assert_allclose(lines[2].get_ydata(), 2 * P * [5e-5, 1e-4, 4e-4])
    plt.close(fig)
    rows = [{"dtype": d, "width": w, "batch": n, "speedup": s}
            for d in ("float32", "float64") for w in (64, 256)
            for n, s in ((32, 0.2), (2048, 3.0))]
    fig = cost.draw_gpu_speedup(rows)
    assert len(fig.axes) == 2
    assert len(fig.axes[0].lines) == 3  # two widths and the line at 1
    np.testing.assert_allclose(fig.axes[0].lines[0].get_xydata(), [[32, 0.2], [2048, 3.0]])
    plt.close(fig)

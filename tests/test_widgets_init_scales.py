"""The gain explorer of the chapter on initialisation: measured scales and the ReLU factor."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from course_pkg.widgets import data_changed, figure_data
from course_pkg.widgets import init_scales as sc


def test_the_grid_has_25_gains_with_lecun_and_he_among_them():
    assert len(sc.GAINS) == 25
    assert sc.GAINS[12] == pytest.approx(1.0) and sc.GAINS[18] == pytest.approx(2.0)


@pytest.mark.parametrize("gain", [0.5, 2.0, 4.0])
def test_relu_scales_follow_the_factor_gain_over_two(gain):
    rms_z, rms_delta = sc.layer_scales("relu", gain)
    per_layer = np.exp(np.polyfit(np.arange(15), np.log(rms_z), 1)[0])
    assert per_layer == pytest.approx(np.sqrt(gain / 2), rel=0.06)
    back = np.exp(-np.polyfit(np.arange(15), np.log(rms_delta), 1)[0])
    assert back == pytest.approx(np.sqrt(gain / 2), rel=0.06)


def test_tanh_is_bounded_and_the_arrays_are_read_only():
    rms_z, rms_delta = sc.layer_scales("tanh", 4.0)
    assert np.all(rms_z < 3)
    with pytest.raises(ValueError):
        rms_z[0] = 0.0
    with pytest.raises(ValueError, match="tanh"):
        sc.layer_scales("sigmoid", 1.0)
    with pytest.raises(ValueError, match="gain"):
        sc.initial_weights(-1.0, [3, 3])


def test_draw_scales_shows_the_measured_values():
    fig = sc.draw_scales(2.0)
    left, right = fig.axes[:2]
    np.testing.assert_allclose(left.lines[1].get_ydata(), sc.layer_scales("relu", 2.0)[0])
    np.testing.assert_allclose(right.lines[0].get_ydata(), sc.layer_scales("tanh", 2.0)[1])
    matplotlib.pyplot.close(fig)


def test_live_explorer_redraws():
    pytest.importorskip("ipywidgets")
    ex = sc.gain_explorer(static=False)
    before = figure_data(ex.figure)
    ex.controls["gain"].value = sc.GAINS[0]
    assert data_changed(before, figure_data(ex.figure))


def test_the_chapter_claims_about_the_explorer():
    """Only gain 2 keeps the ReLU flat; tanh activations shrink at every gain, and its
    gradient is flattest near 1.8 (book/initialisation.md)."""
    def spread(values):
        return abs(np.log(values[-1] / values[0]))

    relu = {g: max(spread(sc.layer_scales("relu", g)[0]), spread(sc.layer_scales("relu", g)[1]))
            for g in sc.GAINS}
    assert min(relu, key=relu.get) == pytest.approx(2.0)
    assert sorted(relu.values())[1] > 3 * relu[sc.GAINS[18]]
    for g in sc.GAINS:
        rms_z, _ = sc.layer_scales("tanh", g)
        assert rms_z[-1] < rms_z[0]
    tanh = {g: spread(sc.layer_scales("tanh", g)[1]) for g in sc.GAINS}
    assert min(tanh, key=tanh.get) == pytest.approx(1.78, abs=0.05)

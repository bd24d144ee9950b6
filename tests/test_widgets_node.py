"""The explorer of chapter 5 (course_pkg.widgets.node_graph): live redraws, static frames."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from course_pkg import node_delta
from course_pkg.widgets import data_changed, figure_data, node_graph


def test_delta_explorer_live_redraws_for_epoch_and_example():
    pytest.importorskip("ipywidgets")
    ex = node_graph.delta_explorer(static=False)
    assert list(ex.controls) == ["epoch", "example"]
    for name, value in (("epoch", 400), ("example", 3), ("epoch", 5)):
        before = figure_data(ex.figure)
        ex.controls[name].value = value
        assert ex.values[name] == value
        assert data_changed(before, figure_data(ex.figure)), name
    plt.close("all")


def test_delta_explorer_static_has_every_frame_and_the_epoch_changes_the_picture():
    ex = node_graph.delta_explorer(static=True)
    assert len(ex.frames) == len(node_graph.EPOCHS) * len(node_graph.INPUTS)
    assert len(ex.frames) <= 40
    # the first control (epoch) must change the picture: the browser test moves it
    assert ex.frames["0,1"] != ex.frames["1,1"]
    assert 'class="course-explorer"' in ex._repr_html_()


def test_node_colours_are_the_deltas_of_node_delta():
    epoch, example = 20, 2
    w = list(node_graph.example_history()[epoch])
    x, t = node_graph.INPUTS[example], node_graph.TARGETS[example]
    _, _, Delta = node_graph.signals(w, x, t)
    fig, ax = plt.subplots()
    nodes = node_graph.draw_graph(ax, w, x, t)
    np.testing.assert_allclose(nodes.get_array(), np.concatenate([Delta[1], Delta[2]]))
    plt.close(fig)


def test_training_history_is_node_delta_updates_and_learns():
    w0 = node_graph.initial_weights()
    history = node_graph.train_epochs(w0, node_graph.INPUTS, node_graph.TARGETS,
                                      node_graph.ETA, 2)
    manual = w0
    for _ in range(2):
        for x, t in zip(node_graph.INPUTS, node_graph.TARGETS, strict=True):
            manual = node_delta.update(manual, x, t, node_graph.ETA)
    for a, b in zip(history[2], manual, strict=True):
        np.testing.assert_array_equal(a, b)
    errors = node_graph.example_errors()
    assert errors.shape == (max(node_graph.EPOCHS) + 1, len(node_graph.INPUTS))
    assert errors[-1].mean() < 0.1 * errors[0].mean()
    last = list(node_graph.example_history()[-1])
    np.testing.assert_allclose(errors[-1], [node_delta.error(last, x, t) for x, t in zip(
        node_graph.INPUTS, node_graph.TARGETS, strict=True)])


def test_bad_input_is_a_clear_value_error():
    with pytest.raises(ValueError, match="epoch must be one of"):
        node_graph.draw(epoch=3)
    with pytest.raises(ValueError, match="example must be"):
        node_graph.draw(example=7)
    with pytest.raises(ValueError, match="positive layer sizes"):
        node_graph.initial_weights((3,))
    with pytest.raises(ValueError, match="equal n"):
        node_graph.train_epochs(node_graph.initial_weights(), np.zeros((4, 3)),
                                np.zeros((3, 2)), 1.0, 1)


def test_the_example_control_names_its_examples():
    """The example slider shows x = (x_1, x_2), not an index: a slider over names, which the
    browser test does not hold to the positions of a numeric one."""
    html = node_graph.delta_explorer(static=True)._repr_html_()
    assert "x = (0, 1)" in html and "x = (1, 1)" in html
    with pytest.raises(ValueError, match="4 values but 3 labels"):
        from course_pkg.widgets import explorer

        explorer(node_graph.draw, {"example": [0, 1, 2, 3]}, static=True,
                 labels={"example": ["a", "b", "c"]})

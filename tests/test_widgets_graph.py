"""The backward-pass stepper of the computational-graph chapter (course_pkg.widgets.backward_pass):
it shows what course_pkg.graph computes, every step is on the static site, labels >= 11 px."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.text import Text

from course_pkg.widgets import backward_pass as bp
from course_pkg.widgets import data_changed


def example():
    G = bp.skip_graph()
    inp, a = G.forward(bp.SKIP_X)
    return G, inp, a, G.error_signals(inp, a, bp.SKIP_T)


def test_frames_end_with_the_modules_values():
    G, inp, a, Delta = example()
    frames = bp.example_frames()
    n_forward = len(G.forward_trace(bp.SKIP_X))
    n_backward = len(G.backward_trace(inp, a, bp.SKIP_T))
    assert len(frames) == 1 + n_forward + n_backward
    after_forward, last = frames[n_forward], frames[-1]
    assert after_forward.phase == "forward" and frames[n_forward + 1].phase == "backward"
    assert after_forward.a == pytest.approx(a) and after_forward.in_ == pytest.approx(inp)
    assert after_forward.Delta == {}
    assert last.Delta == pytest.approx(Delta)
    # the backward pass visits the nodes in reverse topological order: each Delta_k a node
    # needs is there before it is used
    for frame in frames:
        s = frame.step
        if s is not None and s.kind == "child":
            assert s.source in frame.Delta
            assert s.term == pytest.approx(G.w[s.node, s.source] * frame.Delta[s.source])


def test_every_sum_over_children_is_shown_one_term_at_a_time():
    G, inp, a, Delta = example()
    frames = bp.example_frames()
    child_steps = [f.step for f in frames if f.step is not None and f.step.kind == "child"]
    edges_between_computing_nodes = [e for e in G.edges if e[0] in G.activation]
    assert sorted(map(str, ((s.node, s.source) for s in child_steps))) == sorted(
        map(str, edges_between_computing_nodes))
    # h1 feeds u and (skip) y1: its sum has two terms
    assert [s.source for s in child_steps if s.node == "h1"] == ["u", "y1"]
    h1 = G.w["h1", "u"] * Delta["u"] + G.w["h1", "y1"] * Delta["y1"]
    assert Delta["h1"] == pytest.approx((1 - np.tanh(inp["h1"]) ** 2) * h1, rel=1e-12)


def test_drawn_captions_and_table_show_the_frame_values():
    G, inp, a, Delta = example()
    last = len(bp.example_frames()) - 1
    fig = bp.draw_step(last)
    texts = " ".join(t.get_text() for t in fig.findobj(Text))
    for j in G.activation:
        assert f"Δ={Delta[j]:+.3f}" in texts
        assert f"{Delta[j]:+.3f}" in texts
    plt.close(fig)


def test_every_label_is_at_least_11_px_at_the_static_sites_resolution():
    """The static explorer saves frames at 72 dpi: one point is one pixel. The figure must not
    be wider than the page's text column, or the browser would scale it down."""
    for fig in (bp.draw_step(0), bp.draw_step(20), bp.bishop_figure(), bp.skip_figure()):
        sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_text().strip()]
        assert sizes and min(sizes) >= 11, min(sizes)
        assert fig.get_figwidth() * 72 <= 700
        plt.close(fig)


def test_static_explorer_has_every_step_and_each_frame_differs():
    ex = bp.step_explorer(static=True)
    n = len(bp.example_frames())
    assert n >= 25
    assert len(ex.frames) == n
    assert len(set(ex.frames.values())) == n
    assert ex.start == [0]
    assert 'class="course-explorer"' in ex._repr_html_()


def test_live_explorer_redraws():
    pytest.importorskip("ipywidgets")
    ex = bp.step_explorer(static=False)
    assert list(ex.controls) == ["step"]
    def drawn(fig):  # the figure is patches and text: compare the texts and patch colours
        return ([t.get_text() for t in fig.findobj(Text)],
                [np.asarray(p.get_facecolor()) for ax in fig.axes for p in ax.patches])

    texts, colours = drawn(ex.figure)
    ex.controls["step"].value = 24
    assert ex.values["step"] == 24
    texts_24, colours_24 = drawn(ex.figure)
    assert texts != texts_24
    assert data_changed(colours, colours_24)
    plt.close("all")


def test_bishop_graph_is_seed_001s_network():
    """Every input feeds every tanh hidden node and every hidden node every linear output."""
    G = bp.bishop_graph(3, 4, 2)
    assert set(G.edges) == {(f"x{i}", f"z{j}") for i in (1, 2, 3) for j in (1, 2, 3, 4)} | {
        (f"z{j}", f"y{k}") for j in (1, 2, 3, 4) for k in (1, 2)}
    assert {G.activation[f"z{j}"] for j in (1, 2, 3, 4)} == {"tanh"}
    assert bp.depths(G)["y1"] == 2
    assert bp.math_label("z12") == "$z_{12}$" and bp.math_label("u") == "$u$"


def test_bad_input_is_a_clear_value_error():
    with pytest.raises(ValueError, match="step must be 0.."):
        bp.draw_step(999)
    with pytest.raises(ValueError, match="D, M, K >= 1"):
        bp.bishop_graph(0, 2, 2)

"""Drawings of computational graphs and a step-by-step view of their backward pass.

The chapter on computational graphs follows ``003_00675a7c1b711b2c.txt`` on any acyclic graph
(:mod:`course_pkg.graph`): in_j = sum_i w_ij a_i and a_j = g_j(in_j) in topological order, then
Delta_j = g_j'(in_j) ([j output](t_j - a_j) + sum over the children k of w_jk Delta_k) in reverse
order. This module draws such graphs (Bishop's two-layer tanh network of
``001_ce18104b0c2237dd.txt``, and a small network with skip connections) and replays the
traces that :class:`course_pkg.graph.Graph` records, one addition at a time: nothing here
computes a value that the graph module has not computed.

Every label is drawn at 11 points or more: at the 72 dots per inch of the static site's frames
a point is a pixel, so the labels are at least 11 px high at 100% zoom.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from matplotlib.patches import Circle, FancyArrowPatch

from course_pkg.graph import Graph, Node, Step
from course_pkg.widgets import explorer

FONT = 11
"""The smallest font size (points) of every label in these figures."""

# -- the example graph of the widget: two tanh layers, with skip connections ----------------
SKIP_INPUTS = ("x1", "x2")
SKIP_NODES = {"h1": "tanh", "h2": "tanh", "u": "tanh", "y1": "identity", "y2": "identity"}
SKIP_EDGES = {
    ("x1", "h1"): 1.0, ("x2", "h1"): -0.5,
    ("x1", "h2"): 0.5, ("x2", "h2"): 1.0,
    ("h1", "u"): 1.5, ("h2", "u"): -1.0,
    ("u", "y1"): 1.0, ("h1", "y1"): 0.5,     # h1 -> y1 skips the node u
    ("u", "y2"): -0.5, ("h2", "y2"): 1.0,    # h2 -> y2 skips the node u
}
SKIP_OUTPUTS = ("y1", "y2")
SKIP_X = {"x1": 1.0, "x2": 0.5}
SKIP_T = {"y1": 1.0, "y2": 0.0}
"""The example of the widget: inputs, computing nodes with g_j, weights w_ij, outputs, and the
one training example (x, t)."""

SKIP_LABELS = {"x1": "$x_1$", "x2": "$x_2$", "h1": "$h_1$", "h2": "$h_2$", "u": "$u$",
               "y1": "$y_1$", "y2": "$y_2$"}


def skip_graph() -> Graph:
    """The widget's graph: x -> (h1, h2) -> u -> (y1, y2), plus the skips h1 -> y1, h2 -> y2."""
    return Graph(SKIP_INPUTS, SKIP_NODES, SKIP_EDGES, SKIP_OUTPUTS)


def bishop_graph(D: int = 3, M: int = 4, K: int = 2, seed: int = 0) -> Graph:
    """Bishop's network of ``001_ce18104b0c2237dd.txt`` (eqs. 5.3-5.5) as a graph.

    Inputs ``x1..xD``, hidden nodes ``z1..zM`` (tanh; in_j is the seed's h_j and a_j its z_j),
    linear outputs ``y1..yK``, every input feeding every hidden node and every hidden node every
    output, no biases; random weights (normal, seed ``seed``).
    """
    if min(D, M, K) < 1:
        raise ValueError(f"expected D, M, K >= 1, got {(D, M, K)}")
    rng = np.random.default_rng(seed)
    edges = {}
    for j in range(1, M + 1):
        for i in range(1, D + 1):
            edges[f"x{i}", f"z{j}"] = rng.normal()
    for k in range(1, K + 1):
        for j in range(1, M + 1):
            edges[f"z{j}", f"y{k}"] = rng.normal()
    nodes = {**{f"z{j}": "tanh" for j in range(1, M + 1)},
             **{f"y{k}": "identity" for k in range(1, K + 1)}}
    return Graph([f"x{i}" for i in range(1, D + 1)], nodes, edges,
                 [f"y{k}" for k in range(1, K + 1)])


def math_label(node: Node) -> str:
    """``"z3"`` -> ``"$z_3$"``: a name of letters then digits, typeset with a subscript."""
    name = str(node)
    head = name.rstrip("0123456789")
    return f"${head}_{{{name[len(head):]}}}$" if head != name and head else f"${name}$"


# -- drawing ---------------------------------------------------------------------------------
def depths(graph: Graph) -> dict[Node, int]:
    """The length of the longest path from an input or constant node to each node."""
    depth: dict[Node, int] = {}
    for v in graph.order:
        depth[v] = 1 + max((depth[i] for i in graph.parents[v]), default=-1)
    return depth


def layered_positions(graph: Graph, spread: float = 1.0) -> dict[Node, np.ndarray]:
    """(x, y) of each node: x its depth, the nodes of one depth spaced by ``spread`` about y = 0
    in topological order, top down."""
    depth = depths(graph)
    columns: dict[int, list[Node]] = {}
    for v in graph.order:
        columns.setdefault(depth[v], []).append(v)
    pos = {}
    for d, column in columns.items():
        for r, v in enumerate(column):
            pos[v] = np.array([float(d), spread * ((len(column) - 1) / 2 - r)])
    return pos


def _ends(p: np.ndarray, q: np.ndarray, rad: float, radius: float
          ) -> tuple[np.ndarray, np.ndarray]:
    """Where an edge from the circle at p to the circle at q leaves and enters them: one radius
    along the curve's tangent at each end (towards the ``arc3`` control point, which is the
    other end for a straight edge). Cheaper than letting matplotlib clip the path to the
    circles, which took most of a frame's drawing time."""
    d = q - p
    control = (p + q) / 2 + rad * np.array([d[1], -d[0]])
    out, into = control - p, control - q
    return (p + radius * out / np.linalg.norm(out), q + radius * into / np.linalg.norm(into))


def _label_point(p: np.ndarray, q: np.ndarray, rad: float) -> np.ndarray:
    """Where to write an edge's label: a third of the way along a straight edge (so that two
    edges crossing at their middles keep their labels apart), the middle of an arc (matplotlib's
    ``arc3`` is a quadratic Bezier curve with control point mid + rad (dy, -dx))."""
    if rad == 0.0:
        return p + 0.35 * (q - p)
    d = q - p
    return (p + q) / 2 + 0.5 * rad * np.array([d[1], -d[0]])


def draw_graph(ax: Any, graph: Graph, pos: dict[Node, np.ndarray] | None = None,
               labels: dict[Node, str] | None = None, captions: dict[Node, str] | None = None,
               colors: dict[Node, Any] | None = None, edge_labels: dict | None = None,
               highlight_nodes: tuple = (), highlight_edges: tuple = (),
               radius: float = 0.2) -> dict[str, Any]:
    """Draw ``graph`` on ``ax``: circles for nodes, arrows for edges i -> j.

    An edge that jumps over a depth (a skip connection) is drawn as an arc. Input and constant
    nodes are grey unless ``colors`` says otherwise; highlighted nodes and edges are orange.

    Parameters
    ----------
    pos
        node -> (x, y); default :func:`layered_positions`.
    labels
        node -> text inside the circle (default :func:`math_label`).
    captions
        node -> text under the circle.
    edge_labels
        (i, j) -> text placed at the middle of the edge.

    Returns
    -------
    dict
        ``"nodes"``: node -> Circle; ``"edges"``: (i, j) -> FancyArrowPatch; ``"texts"``: the
        Text artists drawn.
    """
    pos = layered_positions(graph) if pos is None else pos
    labels = labels or {}
    colors = colors or {}
    depth = depths(graph)
    circles, arrows, texts = {}, {}, []
    for v in graph.order:
        default = "0.85" if v not in graph.activation else "white"
        hot = v in highlight_nodes
        circles[v] = Circle(pos[v], radius, facecolor=colors.get(v, default), zorder=3,
                            edgecolor="tab:orange" if hot else "black", lw=3 if hot else 1)
        ax.add_patch(circles[v])
        texts.append(ax.text(*pos[v], labels.get(v, math_label(v)), ha="center", va="center",
                             fontsize=FONT + 2, zorder=4))
        if captions and v in captions:
            texts.append(ax.text(pos[v][0], pos[v][1] - radius - 0.05, captions[v],
                                 ha="center", va="top", fontsize=FONT, zorder=4))
    centre = np.mean([pos[v] for v in graph.order], axis=0)
    for i, j in graph.edges:
        hot = (i, j) in highlight_edges
        rad = 0.0
        if depth[j] - depth[i] > 1:  # a skip connection: an arc that bows away from the centre
            rad = -0.3 if (pos[i][1] + pos[j][1]) / 2 >= centre[1] else 0.3
        start, end = _ends(pos[i], pos[j], rad, radius)
        arrows[i, j] = FancyArrowPatch(
            start, end, arrowstyle="-|>", shrinkA=0, shrinkB=0,
            mutation_scale=12, lw=3 if hot else 1.1, zorder=5 if hot else 2,
            color="tab:orange" if hot else "0.35", connectionstyle=f"arc3,rad={rad}")
        ax.add_patch(arrows[i, j])
        if edge_labels and (i, j) in edge_labels:
            texts.append(ax.text(*_label_point(pos[i], pos[j], rad), edge_labels[i, j],
                                 ha="center", va="center", fontsize=FONT, zorder=6,
                                 bbox={"boxstyle": "round,pad=0.1", "fc": "white",
                                       "ec": "none", "alpha": 0.9}))
    xy = np.array(list(pos.values()))
    ax.set_xlim(xy[:, 0].min() - 0.5, xy[:, 0].max() + 0.5)
    ax.set_ylim(xy[:, 1].min() - 0.65, xy[:, 1].max() + 0.45)
    ax.set_aspect("equal")
    ax.axis("off")
    return {"nodes": circles, "edges": arrows, "texts": texts}


def bishop_figure(D: int = 3, M: int = 4, K: int = 2) -> Any:
    """Bishop's network as a graph, with the names of ``001_ce18104b0c2237dd.txt``."""
    import matplotlib.pyplot as plt

    graph = bishop_graph(D, M, K)
    pos = {v: p * np.array([2.2, 1.0]) for v, p in layered_positions(graph, 0.85).items()}
    j, i, k = min(3, M), min(2, D), 1
    edge_labels = {(f"x{i}", f"z{j}"): f"$w^{{(1)}}_{{{j}{i}}}$",
                   (f"z{j}", f"y{k}"): f"$w^{{(2)}}_{{{k}{j}}}$"}
    top = max(p[1] for p in pos.values())
    fig, ax = plt.subplots(figsize=(6.4, 0.85 * max(D, M, K) + 1.1))
    draw_graph(ax, graph, pos, edge_labels=edge_labels, highlight_edges=tuple(edge_labels),
               radius=0.25)
    for d, text in enumerate(["inputs $x_i$", "hidden: $h_j$, $z_j = \\tanh h_j$",
                              "outputs $y_k$ (linear)"]):
        ax.text(2.2 * d, top + 0.45, text, ha="center", va="bottom", fontsize=FONT + 1)
    ax.set_ylim(top=top + 0.9)
    fig.tight_layout()
    return fig


def skip_figure() -> Any:
    """The widget's graph, with the weight of every edge."""
    import matplotlib.pyplot as plt

    graph = skip_graph()
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    draw_graph(ax, graph, labels=SKIP_LABELS, captions=dict(SKIP_NODES),
               edge_labels={e: f"{w:g}" for e, w in SKIP_EDGES.items()})
    fig.tight_layout()
    return fig


# -- the stepper ------------------------------------------------------------------------------
@dataclass
class Frame:
    """What is known after some steps of the forward and backward passes.

    Attributes
    ----------
    phase
        ``"start"``, ``"forward"`` or ``"backward"``.
    step
        The step just taken (None at the start).
    in_, a, Delta
        node -> the running sum in_j, the activation a_j, the error signal Delta_j, for the
        nodes reached so far (inputs have their a_i from the start).
    sums
        node -> the running sum towards -dE_n/da_j of the backward pass.
    """

    phase: str
    step: Step | None
    in_: dict = field(default_factory=dict)
    a: dict = field(default_factory=dict)
    Delta: dict = field(default_factory=dict)
    sums: dict = field(default_factory=dict)


def frames(graph: Graph, x: dict, t: dict) -> list[Frame]:
    """Replay :meth:`Graph.forward_trace` and :meth:`Graph.backward_trace` one step at a time.

    Frame 0 is the start; frame s shows the state after s steps (forward steps first).
    """
    forward = graph.forward_trace(x)
    inp = {s.node: s.term for s in forward if s.kind == "g"}
    a_all = {**{i: float(x[i]) for i in graph.inputs}, **graph.constants,
             **{s.node: s.total for s in forward if s.kind == "g"}}
    backward = graph.backward_trace(inp, a_all, t)
    state = Frame("start", None, a={i: a_all[i] for i in (*graph.inputs, *graph.constants)})
    out = [state]
    for phase, steps in (("forward", forward), ("backward", backward)):
        for step in steps:
            state = Frame(phase, step, dict(state.in_), dict(state.a), dict(state.Delta),
                          dict(state.sums))
            j = step.node
            if step.kind in ("parent", "shift"):
                state.in_[j] = step.total
            elif step.kind == "g":
                state.in_[j], state.a[j] = step.term, step.total
            elif step.kind in ("error", "child"):
                state.sums[j] = step.total
            else:  # g_prime
                state.Delta[j] = step.total
            out.append(state)
    return out


def describe(frame: Frame, graph: Graph, labels: dict[Node, str]) -> list[str]:
    """The lines of text that explain a frame's step (mathtext)."""
    s = frame.step
    if s is None:
        return ["Start: the inputs are given.", "Forward: visit the nodes in",
                "topological order; each sums over", "its parents, then applies $g_j$."]
    j, L = s.node, labels
    if s.kind == "parent":
        i = s.source
        return [f"Forward, node {L[j]}: add", f"$w\\, a$ of parent {L[i]}:",
                f"{graph.w[i, j]:+.3f} $\\times$ {frame.a[i]:+.3f}"
                f" = {s.term:+.3f}", f"$\\mathrm{{in}}$ so far: {s.total:+.3f}"]
    if s.kind == "shift":
        return [f"Forward, node {L[j]}: add the shift {s.term:+.3f}"]
    if s.kind == "g":
        return [f"Forward, node {L[j]}: apply $g_j$", f"$a = g(\\mathrm{{in}})$ = g({s.term:+.3f})",
                f"$= {s.total:+.3f}$"]
    if s.kind == "error":
        return [f"Backward, output {L[j]}:", "start the sum with $t - a$",
                f"$= {s.term:+.3f}$"]
    if s.kind == "child":
        k = s.source
        return [f"Backward, node {L[j]}: add", f"$w\\,\\Delta$ of child {L[k]}:",
                f"{graph.w[j, k]:+.3f} $\\times$ "
                f"{frame.Delta[k]:+.3f} = {s.term:+.3f}",
                f"sum so far: {s.total:+.3f}"]
    return [f"Backward, node {L[j]}: multiply by", f"$g'(\\mathrm{{in}})$ = {s.term:.3f}:",
            f"$\\Delta$ = {s.term:.3f} $\\times$ {frame.sums.get(j, 0.0):+.3f}",
            f"$= {s.total:+.3f}$"]


@lru_cache(maxsize=1)
def example_frames() -> tuple[Frame, ...]:
    """The frames of the widget's example (computed once)."""
    return tuple(frames(skip_graph(), SKIP_X, SKIP_T))


def draw_step(step: int = 0) -> Any:
    """The widget's figure after ``step`` steps: the graph (left), the step in words and every
    value known so far (right)."""
    import matplotlib.pyplot as plt

    all_frames = example_frames()
    if step not in range(len(all_frames)):
        raise ValueError(f"step must be 0..{len(all_frames) - 1}, got {step!r}")
    graph, frame = skip_graph(), all_frames[step]
    s = frame.step
    captions, colors = {}, {}
    for v in graph.order:
        lines = []
        if v in frame.a:
            lines.append(f"a={frame.a[v]:+.2f}")
        elif v in frame.in_:
            lines.append(f"in={frame.in_[v]:+.2f}")
        if v in frame.Delta:
            lines.append(f"Δ={frame.Delta[v]:+.3f}")
            colors[v] = "#9ecae1" if frame.Delta[v] > 0 else "#fcae91"
        elif v in frame.a and v in graph.activation:
            colors[v] = "#e5f5e0"
        captions[v] = "\n".join(lines)
    hot_edges = ()
    if s is not None and s.kind == "parent":
        hot_edges = ((s.source, s.node),)
    elif s is not None and s.kind == "child":
        hot_edges = ((s.node, s.source),)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.2, 4.2), width_ratios=(1.35, 1))
    pos = layered_positions(graph, spread=1.3)
    draw_graph(left, graph, pos, labels=SKIP_LABELS, captions=captions, colors=colors,
               highlight_nodes=() if s is None else (s.node,), highlight_edges=hot_edges,
               radius=0.24)
    left.set_ylim(-1.6, 1.2)
    phase = {"start": "start", "forward": "forward pass", "backward": "backward pass"}
    left.set_title(f"step {step} of {len(all_frames) - 1}: {phase[frame.phase]}",
                   fontsize=FONT + 1)
    right.axis("off")
    lines = describe(frame, graph, SKIP_LABELS)
    right.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", fontsize=FONT + 1,
               transform=right.transAxes, linespacing=1.5)
    table = ["node     a        Δ"]
    for v in graph.order:
        if v in graph.activation:
            a_text = f"{frame.a[v]:+.3f}" if v in frame.a else "   ·  "
            d_text = f"{frame.Delta[v]:+.3f}" if v in frame.Delta else "   ·  "
            table.append(f"{str(v):<5} {a_text:>7}  {d_text:>7}")
    right.text(0.0, 0.42, "\n".join(table), va="top", ha="left", fontsize=FONT,
               family="monospace", transform=right.transAxes)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.92, wspace=0.05)
    return fig


def step_explorer(static: bool | None = None) -> Any:
    """The widget: one slider over every step of the forward and backward passes."""
    return explorer(draw_step, {"step": list(range(len(example_frames())))},
                    initial={"step": 0}, static=static)

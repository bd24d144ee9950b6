"""course_pkg.graph: back-propagation on any DAG, in the notation of 003_00675a7c1b711b2c.txt.

Checked against course_pkg.Network and course_pkg.node_delta on layered networks, and against
central finite differences on random DAGs (hypothesis): Delta_j = -dE_n/d in_j for every
computing node and dE_n/dw_ij = -a_i Delta_j for every edge.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import course_pkg as cp
from course_pkg import graph as cg
from course_pkg import node_delta
from course_pkg.gradcheck import central_differences
from course_pkg.graph import Graph

LAYERED = [([3, 4, 2], ["tanh", "sigmoid"], 0), ([2, 3, 3, 1], "sigmoid", 1),
           ([4, 5, 3], ["relu", "identity"], 2), ([1, 3, 2], ["tanh", "identity"], 3)]


def layered_case(sizes, activations, seed):
    rng = np.random.default_rng(seed)
    W = [rng.normal(0, 1, (q, p)) for p, q in zip(sizes, sizes[1:], strict=False)]
    b = [rng.normal(0, 1, q) for q in sizes[1:]]
    x, t = rng.normal(0, 1, sizes[0]), rng.uniform(0, 1, sizes[-1])
    net = cp.Network(sizes, activations, loss="half_squared_error", weights=W, biases=b)
    return net, Graph.from_layers(W, b, activations), x, t


@pytest.mark.parametrize("sizes, activations, seed", LAYERED)
def test_layered_graph_matches_network(sizes, activations, seed):
    """On a layered network the graph's E_n, Delta and gradient are the Network's C, -delta and
    (dW, db), with W_l[k, i] on the edge (l-1, i) -> (l, k) and b_l[k] on bias -> (l, k)."""
    net, G, x, t = layered_case(sizes, activations, seed)
    assert G.error(x, t) == pytest.approx(net.loss(x[None], t[None]), rel=1e-12)
    inp, a = G.forward(x)
    z, a_net = net.forward(x[None])
    Delta = G.error_signals(inp, a, t)
    loss, dW, db = net.loss_and_gradients(x[None], t[None])
    L = len(sizes) - 1
    delta_L = cp.losses.output_delta("half_squared_error", net.S_prime[L], z[L], a_net[L],
                                     t[:, None], np)
    _, _, delta = cp.back_propagate(net.W, z, a_net, delta_L, net.S_prime)
    grad = G.gradient(x, t)
    for l in range(1, L + 1):
        for k in range(sizes[l]):
            assert inp[l, k] == pytest.approx(z[l][k, 0], rel=1e-12, abs=1e-14)
            assert a[l, k] == pytest.approx(a_net[l][k, 0], rel=1e-12, abs=1e-14)
            assert Delta[l, k] == pytest.approx(-delta[l][k, 0], rel=1e-12, abs=1e-14)
            assert grad[cg.BIAS, (l, k)] == pytest.approx(db[l - 1][k], rel=1e-12, abs=1e-14)
            for i in range(sizes[l - 1]):
                assert grad[(l - 1, i), (l, k)] == pytest.approx(dW[l - 1][k, i], rel=1e-12,
                                                                  abs=1e-14)


@pytest.mark.parametrize("sizes, activation, seed", [([3, 4, 3, 2], "sigmoid", 0),
                                                     ([2, 5, 1], "tanh", 1)])
def test_layered_graph_without_biases_is_node_delta(sizes, activation, seed):
    """Seed 003's layered network (no biases): the same Delta as course_pkg.node_delta."""
    rng = np.random.default_rng(seed)
    w = [rng.normal(0, 1, (p, q)) for p, q in zip(sizes, sizes[1:], strict=False)]
    x, t = rng.normal(0, 1, sizes[0]), rng.uniform(0, 1, sizes[-1])
    G = Graph.from_layers([w_m.T for w_m in w], None, activation)
    assert not G.constants
    g, g_prime = node_delta.derivative(activation)
    inp, a = node_delta.forward(w, x, g)
    expected = node_delta.error_signals(w, inp, a, t, g_prime)
    Delta = G.error_signals(*G.forward(x), t)
    for m in range(1, len(sizes)):
        np.testing.assert_allclose([Delta[m, k] for k in range(sizes[m])], expected[m],
                                   rtol=1e-12, atol=1e-15)
    new = G.update(x, t, 0.3)
    w_new = node_delta.update(w, x, t, 0.3, activation)
    for m, w_m in enumerate(w_new):
        for i, k in np.ndindex(w_m.shape):
            assert new.w[(m, i), (m + 1, k)] == pytest.approx(w_m[i, k], rel=1e-12, abs=1e-15)


# -- random DAGs -----------------------------------------------------------------------------
SMOOTH = ["identity", "sigmoid", "tanh"]
weight = st.floats(-1.5, 1.5, allow_nan=False)
value = st.floats(-2.0, 2.0, allow_nan=False)


@st.composite
def dags(draw):
    """A random DAG: inputs x0.., maybe a constant 'one', computing nodes n0.. whose edges come
    only from earlier names (so it is acyclic), declared in a shuffled order."""
    n_in, n_comp = draw(st.integers(1, 3)), draw(st.integers(1, 6))
    inputs = [f"x{i}" for i in range(n_in)]
    constants = {"one": 1.0} if draw(st.booleans()) else {}
    comp = [f"n{j}" for j in range(n_comp)]
    earlier = [*inputs, *constants]
    edges = {}
    for j in comp:
        for i in draw(st.lists(st.sampled_from(earlier), unique=True, max_size=len(earlier))):
            edges[i, j] = draw(weight)
        earlier.append(j)
    edge_order = draw(st.permutations(list(edges)))
    nodes = {j: draw(st.sampled_from(SMOOTH)) for j in draw(st.permutations(comp))}
    outputs = draw(st.lists(st.sampled_from(comp), unique=True, min_size=1))
    G = Graph(inputs, nodes, {e: edges[e] for e in edge_order}, outputs, constants)
    x = draw(st.lists(value, min_size=n_in, max_size=n_in))
    t = draw(st.lists(value, min_size=len(outputs), max_size=len(outputs)))
    return G, x, t


@settings(max_examples=80)
@given(dags())
def test_topological_order_puts_every_parent_first(case):
    G, _, _ = case
    assert sorted(map(str, G.order)) == sorted(map(str, [*G.inputs, *G.constants,
                                                         *G.activation]))
    position = {v: p for p, v in enumerate(G.order)}
    assert all(position[i] < position[j] for i, j in G.edges)
    assert all(G.parents[j] == sorted(G.parents[j], key=position.__getitem__)
               for j in G.order)


@settings(max_examples=80)
@given(dags())
def test_weight_gradient_is_finite_differences_on_random_dags(case):
    """dE_n/dw_ij = -a_i Delta_j, against central differences of E_n in every weight."""
    G, x, t = case
    grad = G.gradient(x, t)
    if not G.edges:
        assert grad == {}
        return
    fd = central_differences(lambda w: G.with_weights(w).error(x, t), G.weights)
    scale = max(1.0, G.error(x, t))
    np.testing.assert_allclose([grad[e] for e in G.edges], fd, rtol=1e-5, atol=1e-6 * scale)


@settings(max_examples=80)
@given(dags())
def test_Delta_is_minus_dE_d_in_on_random_dags(case):
    """Delta_j = -dE_n/d in_j: shift in_j by eps (everything after j recomputed)."""
    G, x, t = case
    Delta = G.error_signals(*G.forward(x), t)
    comp = list(G.activation)
    fd = central_differences(
        lambda eps: G.error(x, t, shift=dict(zip(comp, eps, strict=True))), np.zeros(len(comp)))
    scale = max(1.0, G.error(x, t))
    np.testing.assert_allclose([Delta[j] for j in comp], -fd, rtol=1e-5, atol=1e-6 * scale)


@settings(max_examples=40)
@given(dags())
def test_the_result_does_not_depend_on_the_declaration_order(case):
    """Another valid declaration order gives another topological order, the same Delta."""
    G, x, t = case
    reverse = Graph(G.inputs[::-1], dict(reversed(list(G.activation.items()))),
                    {e: G.w[e] for e in reversed(G.edges)}, G.outputs, G.constants)
    x_map = dict(zip(G.inputs, x, strict=True))
    one, two = G.error_signals(*G.forward(x), t), reverse.error_signals(*reverse.forward(x_map),
                                                                         t)
    for j in G.activation:
        assert one[j] == pytest.approx(two[j], rel=1e-12, abs=1e-14)


@settings(max_examples=40)
@given(dags(), st.data())
def test_an_edge_back_to_an_ancestor_is_a_cycle(case, data):
    G, _, _ = case
    comp = list(G.activation)
    position = {v: p for p, v in enumerate(G.order)}
    edges = [e for e in G.edges if e[0] in G.activation]
    if not edges:
        j = data.draw(st.sampled_from(comp))
        bad = {**G.w, (j, j): 1.0}
        cycle = f"{j!r} -> {j!r}"
    else:
        i, j = data.draw(st.sampled_from(edges))
        assert position[i] < position[j]
        bad = {**G.w, (j, i): 0.5}
        cycle = None
    with pytest.raises(ValueError, match="cycle") as err:
        Graph(G.inputs, G.activation, bad, G.outputs, G.constants)
    assert "acyclic" in str(err.value)
    if cycle:
        assert cycle in str(err.value)


def test_update_is_a_gradient_descent_step_and_lowers_the_error():
    net, G, x, t = layered_case([3, 4, 2], ["tanh", "sigmoid"], 7)
    inp, a = G.forward(x)
    Delta = G.error_signals(inp, a, t)
    eta = 0.05
    new = G.update(x, t, eta)
    for i, j in G.edges:
        assert new.w[i, j] == pytest.approx(G.w[i, j] + eta * a[i] * Delta[j], rel=1e-12)
    assert new.error(x, t) < G.error(x, t)
    net.train_step(x[None], t[None], lr=eta)
    again = Graph.from_layers(net.weights, net.biases, ["tanh", "sigmoid"])
    np.testing.assert_allclose(new.weights, again.weights, rtol=1e-12)


def test_output_that_feeds_another_node_gets_both_terms():
    """An output k that also feeds a node: -dE/da_k = (t_k - a_k) + sum_children w Delta."""
    G = Graph(["x"], {"p": "tanh", "q": "sigmoid"}, {("x", "p"): 0.7, ("p", "q"): -1.2},
              outputs=["p", "q"])
    x, t = [0.4], [0.1, 0.9]
    inp, a = G.forward(x)
    Delta = G.error_signals(inp, a, t)
    g_p = 1 - np.tanh(inp["p"]) ** 2
    assert Delta["p"] == pytest.approx(g_p * ((0.1 - a["p"]) + -1.2 * Delta["q"]), rel=1e-12)
    fd = central_differences(lambda e: G.error(x, t, shift={"p": e[0]}), np.zeros(1))
    assert Delta["p"] == pytest.approx(-fd[0], rel=1e-6)


def test_traces_record_every_term():
    G = Graph(["x1", "x2"], {"h": "tanh", "y": "identity"},
              {("x1", "h"): 2.0, ("x2", "h"): -1.0, ("h", "y"): 0.5, ("x1", "y"): 1.5}, ["y"])
    forward = G.forward_trace([1.0, 3.0])
    assert [(s.node, s.kind, s.source) for s in forward] == [
        ("h", "parent", "x1"), ("h", "parent", "x2"), ("h", "g", None),
        ("y", "parent", "x1"), ("y", "parent", "h"), ("y", "g", None)]
    assert forward[1].total == pytest.approx(2.0 - 3.0)
    assert forward[2].total == pytest.approx(np.tanh(-1.0))
    inp, a = G.forward([1.0, 3.0])
    backward = G.backward_trace(inp, a, [0.0])
    assert [(s.node, s.kind, s.source) for s in backward] == [
        ("y", "error", None), ("y", "g_prime", None), ("h", "child", "y"),
        ("h", "g_prime", None)]
    assert backward[2].term == pytest.approx(0.5 * backward[1].total)


# -- bad input -------------------------------------------------------------------------------
def small():
    return Graph(["x"], {"h": "tanh", "y": "identity"}, {("x", "h"): 1.0, ("h", "y"): 2.0},
                 ["y"])


@pytest.mark.parametrize("kwargs, message", [
    (dict(edges={("x", "h"): 1.0, ("h", "y"): 1.0, ("y", "h"): 1.0}), "cycle"),
    (dict(edges={("x", "zz"): 1.0}), "unknown node 'zz'"),
    (dict(edges={("h", "x"): 1.0}), "ends at an input"),
    (dict(edges={("x", "h"): float("nan")}), "must be finite"),
    (dict(edges={("x", "h"): "heavy"}), "must be a real number"),
    (dict(edges={("x", "h", "y"): 1.0}), "pair"),
    (dict(edges=[("x", "h")]), "mapping"),
    (dict(outputs=["x"]), "must be one of the computing nodes"),
    (dict(outputs=[]), "at least one output"),
    (dict(nodes={"h": "softmax", "y": "identity"}), "componentwise"),
    (dict(nodes={"h": "swish", "y": "identity"}), "unknown activation"),
    (dict(nodes={"x": "tanh", "y": "identity"}), "own name"),
    (dict(nodes={}), "at least one computing node"),
    (dict(constants={"one": np.inf}), "must be finite"),
])
def test_bad_graphs_are_clear_value_errors(kwargs, message):
    spec = dict(inputs=["x"], nodes={"h": "tanh", "y": "identity"},
                edges={("x", "h"): 1.0, ("h", "y"): 2.0}, outputs=["y"])
    spec.update(kwargs)
    with pytest.raises(ValueError, match=message):
        Graph(**spec)


def test_bad_examples_are_clear_value_errors():
    G = small()
    with pytest.raises(ValueError, match=r"expected 1 input values"):
        G.forward([1.0, 2.0])
    with pytest.raises(ValueError, match=r"missing \['x'\], unknown \['z'\]"):
        G.forward({"z": 1.0})
    with pytest.raises(ValueError, match="expected 1 targets"):
        G.error([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="must be finite"):
        G.forward([np.nan])
    with pytest.raises(ValueError, match="shift applies to computing nodes"):
        G.forward([1.0], shift={"x": 0.1})
    with pytest.raises(ValueError, match="eta must be positive"):
        G.update([1.0], [0.0], -0.1)
    with pytest.raises(ValueError, match="come from forward"):
        G.backward_trace({}, {}, [0.0])
    with pytest.raises(ValueError, match="expected 2 weights"):
        G.with_weights([1.0])
    with pytest.raises(ValueError, match="not an edge"):
        G.with_weights({("y", "h"): 1.0})


def test_bad_layers_are_clear_value_errors():
    with pytest.raises(ValueError, match=r"W_2 should have shape \(p_2, p_1\) with p_1 = 4"):
        Graph.from_layers([np.zeros((4, 3)), np.zeros((2, 5))])
    with pytest.raises(ValueError, match=r"b_1 should have shape \(4,\)"):
        Graph.from_layers([np.zeros((4, 3))], [np.zeros(3)])
    with pytest.raises(ValueError, match="expected 2 activation names"):
        Graph.from_layers([np.zeros((4, 3)), np.zeros((2, 4))], activations=["tanh"])
    with pytest.raises(ValueError, match="at least one weight matrix"):
        Graph.from_layers([])


def test_topological_order_of_a_diamond_and_its_cycle_message():
    order = cg.topological_order(["d", "b", "c", "a"],
                                 [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")])
    assert order == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="'b' -> 'c' -> 'b'"):
        cg.topological_order(["a", "b", "c"], [("a", "b"), ("b", "c"), ("c", "b")])


# -- product and max nodes: the gate view ------------------------------------------------------
@st.composite
def gated_dags(draw):
    """A random DAG as in dags(), whose computing nodes with parents are sums, products or
    maxima at random."""
    G, x, t = draw(dags())
    combine = {j: draw(st.sampled_from(cg.COMBINE)) for j in G.activation if G.parents[j]}
    return Graph(G.inputs, G.activation, G.w, G.outputs, G.constants, combine), x, t


def clear_of_ties(G, x, gap=1e-3):
    """True when no max node has two largest terms within ``gap`` (no kink within reach)."""
    _, a = G.forward(x)
    for j, how in G.combine.items():
        if how == "max" and len(G.parents[j]) > 1:
            terms = sorted((G.w[i, j] * a[i] for i in G.parents[j]), reverse=True)
            if terms[0] - terms[1] < gap:
                return False
    return True


@settings(max_examples=80, deadline=None)
@given(gated_dags())
def test_gated_graphs_back_propagate_the_derivative(case):
    """Delta_j = -dE_n/d in_j and dE_n/dw_ij = -a_i lambda_ij Delta_j with product and max
    nodes, against central differences (away from the ties of a max)."""
    from hypothesis import assume

    G, x, t = case
    assume(clear_of_ties(G, x))
    scale = max(1.0, G.error(x, t))
    comp = list(G.activation)
    Delta = G.error_signals(*G.forward(x), t)
    fd_in = central_differences(
        lambda eps: G.error(x, t, shift=dict(zip(comp, eps, strict=True))), np.zeros(len(comp)))
    np.testing.assert_allclose([Delta[j] for j in comp], -fd_in, rtol=1e-5, atol=1e-6 * scale)
    if G.edges:
        grad = G.gradient(x, t)
        fd = central_differences(lambda w: G.with_weights(w).error(x, t), G.weights)
        np.testing.assert_allclose([grad[e] for e in G.edges], fd, rtol=1e-5,
                                   atol=1e-6 * scale)


def gate(combine, values, weights=None):
    """One identity gate j over inputs p, q (and r), output j with target 0."""
    names = ["p", "q", "r"][:len(values)]
    weights = weights or [1.0] * len(values)
    G = Graph(names, {"j": "identity"}, {(n, "j"): w for n, w in zip(names, weights,
                                                                      strict=True)},
              ["j"], combine={"j": combine})
    return G, dict(zip(names, values, strict=True))


def test_the_patterns_of_the_gates():
    """add distributes, multiply swaps, max routes: lambda for each parent."""
    G, x = gate("sum", [2.0, -3.0])
    assert G.local_gradients("j", G.forward(x)[1]) == {"p": 1.0, "q": 1.0}
    G, x = gate("product", [2.0, -3.0])
    _, a = G.forward(x)
    assert a["j"] == -6.0 and G.local_gradients("j", a) == {"p": -3.0, "q": 2.0}
    G, x = gate("product", [2.0, -3.0, 0.5])
    assert G.local_gradients("j", G.forward(x)[1]) == {"p": -1.5, "q": 1.0, "r": -6.0}
    G, x = gate("max", [2.0, -3.0, 5.0])
    _, a = G.forward(x)
    assert a["j"] == 5.0 and G.local_gradients("j", a) == {"p": 0.0, "q": 0.0, "r": 1.0}
    G, x = gate("max", [4.0, 4.0])                        # a tie: the first parent wins
    assert G.local_gradients("j", G.forward(x)[1]) == {"p": 1.0, "q": 0.0}
    # a weighted product: the terms are w_ij a_i
    G, x = gate("product", [2.0, 3.0], weights=[0.5, -1.0])
    _, a = G.forward(x)
    assert a["j"] == -3.0 and G.local_gradients("j", a) == {"p": -3.0, "q": 1.0}
    grad = G.gradient(x, [0.0])                           # E = a_j^2 / 2, Delta_j = -a_j
    assert grad["p", "j"] == pytest.approx(2.0 * -3.0 * -3.0)   # a_p lambda_p (-Delta_j)
    assert grad["q", "j"] == pytest.approx(3.0 * 1.0 * -3.0)


def test_a_copy_gate_adds_the_gradients_of_its_uses():
    """x feeds both factors of a product: d(x * x)/dx = 2x, the sum over the two uses."""
    G = Graph(["x"], {"c1": "identity", "c2": "identity", "m": "identity"},
              {("x", "c1"): 1.0, ("x", "c2"): 1.0, ("c1", "m"): 1.0, ("c2", "m"): 1.0}, ["m"],
              combine={"m": "product"})
    x, t = 1.5, 0.0
    Delta = G.error_signals(*G.forward([x]), [t])
    assert Delta["m"] == pytest.approx(-(x * x))
    assert Delta["c1"] == pytest.approx(x * Delta["m"]) and Delta["c2"] == Delta["c1"]
    # -dE/dx = sum over the children of x = 2 x Delta_m = -(x^2)(2x), and E = x^4 / 2
    assert Delta["c1"] + Delta["c2"] == pytest.approx(-2 * x ** 3)


def test_traces_and_copies_keep_the_combine():
    G, x = gate("product", [2.0, -3.0, 0.5])
    steps = G.forward_trace(x)
    assert [s.total for s in steps if s.kind == "parent"] == [2.0, -6.0, -3.0]
    G2 = G.with_weights(G.weights * 2)
    assert G2.combine == G.combine and G.update(x, [0.0], 0.1).combine == G.combine
    assert "product nodes" in repr(G)
    back = G.backward_trace(*G.forward(x), [0.0])
    assert [s.kind for s in back] == ["error", "g_prime"]


@pytest.mark.parametrize(("combine", "message"), [
    ({"zz": "product"}, "not a computing node"),
    ({"j": "mean"}, "combine must be one of"),
    ({"lonely": "max"}, "needs at least one incoming edge"),
])
def test_bad_combine_is_a_clear_value_error(combine, message):
    with pytest.raises(ValueError, match=message):
        Graph(["p"], {"j": "identity", "lonely": "identity"}, {("p", "j"): 1.0}, ["j"],
              combine=combine)
    G, _ = gate("sum", [1.0])
    with pytest.raises(ValueError, match="not a computing node"):
        G.local_gradients("p", {"p": 1.0, "j": 1.0})

"""Chapter book/computational_graphs.md: every formula, by code, against finite differences.

The chapter generalises the node-level proof of ``003_00675a7c1b711b2c.txt`` to any DAG:
(cg-forward), (cg-error), topological order (cg-thm-order), the shifted inputs (cg-shift) and
what dE/d in_j means (cg-meaning), the backward recursion (cg-delta) with its sum over the
children, (cg-grad), the cost count (cg-cost), Bishop's network of ``001_ce18104b0c2237dd.txt``,
the gate view (cg-combine), (cg-delta-gate), vector-Jacobian products (cg-vjp, against PyTorch)
and the exercises.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_pkg import tanh_two_layer as t2
from course_pkg.gradcheck import central_differences
from course_pkg.graph import Graph, topological_order
from course_pkg.widgets import backward_pass as bp

try:  # tests/ is on sys.path under pytest's default import mode
    from test_graph import dags
except ImportError:  # pragma: no cover
    from tests.test_graph import dags


def skip_example():
    G = bp.skip_graph()
    return G, bp.SKIP_X, bp.SKIP_T


# -- (cg-forward), (cg-error) ------------------------------------------------------------------
@settings(max_examples=60)
@given(dags())
def test_forward_is_the_sum_over_the_parents_then_g(case):
    """(cg-forward) in_j = sum_{i in pa(j)} w_ij a_i, a_j = g_j(in_j); (cg-error)."""
    G, x, t = case
    inp, a = G.forward(x)
    g = {"identity": lambda v: v, "sigmoid": lambda v: 1 / (1 + np.exp(-v)), "tanh": np.tanh}
    for j, name in G.activation.items():
        parents = [i for i, k in G.edges if k == j]
        assert inp[j] == pytest.approx(sum(G.w[i, j] * a[i] for i in parents), abs=1e-12)
        assert a[j] == pytest.approx(g[name](inp[j]), rel=1e-12, abs=1e-15)
    assert G.error(x, t) == pytest.approx(
        0.5 * sum((tk - a[k]) ** 2 for k, tk in zip(G.outputs, t, strict=True)), rel=1e-12)


def test_skip_network_forward_by_hand():
    G, x, t = skip_example()
    w = G.w
    h1 = np.tanh(w["x1", "h1"] * x["x1"] + w["x2", "h1"] * x["x2"])
    h2 = np.tanh(w["x1", "h2"] * x["x1"] + w["x2", "h2"] * x["x2"])
    u = np.tanh(w["h1", "u"] * h1 + w["h2", "u"] * h2)
    y1, y2 = w["u", "y1"] * u + w["h1", "y1"] * h1, w["u", "y2"] * u + w["h2", "y2"] * h2
    _, a = G.forward(x)
    assert [a[j] for j in ("h1", "h2", "u", "y1", "y2")] == pytest.approx([h1, h2, u, y1, y2])
    assert G.error(x, t) == pytest.approx(0.5 * ((t["y1"] - y1) ** 2 + (t["y2"] - y2) ** 2))
    assert G.children["h1"] == ["u", "y1"] and G.children["h2"] == ["u", "y2"]


# -- (cg-thm-order): an order exists exactly when there is no cycle -----------------------------
@settings(max_examples=150)
@given(st.integers(1, 6).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)),
                         unique=True, max_size=12))))
def test_an_order_is_found_exactly_when_there_is_no_cycle(case):
    """Either a valid topological order, or a ValueError that names a real cycle."""
    n, edges = case
    nodes = [f"v{i}" for i in range(n)]
    named = [(f"v{i}", f"v{j}") for i, j in edges]
    try:
        order = topological_order(nodes, named)
    except ValueError as err:
        text = str(err).split("cycle, ", 1)[1].split(";", 1)[0]
        cycle = [name.strip("'") for name in text.split(" -> ")]
        assert cycle[0] == cycle[-1] and len(cycle) >= 2
        assert all(step in named for step in itertools.pairwise(cycle))
    else:
        assert sorted(order) == sorted(nodes)
        position = {v: p for p, v in enumerate(order)}
        assert all(position[i] < position[j] for i, j in named)


# -- (cg-shift), (cg-meaning), (cg-delta), (cg-grad) ---------------------------------------------
def test_shift_adds_to_in_j_and_everything_downstream_follows():
    """(cg-shift): eps_j is added to in_j; nodes before j are unchanged, the rest recomputed."""
    G, x, t = skip_example()
    inp, a = G.forward(x)
    inp_s, a_s = G.forward(x, shift={"u": 0.25})
    assert inp_s["u"] == pytest.approx(inp["u"] + 0.25)
    for j in ("h1", "h2"):
        assert a_s[j] == a[j]
    expected_y1 = G.w["u", "y1"] * np.tanh(inp["u"] + 0.25) + G.w["h1", "y1"] * a["h1"]
    assert a_s["y1"] == pytest.approx(expected_y1)


def test_skip_network_Delta_by_hand_and_by_finite_differences():
    """(cg-delta) written out for the skip network; Delta_j = -dE/d eps_j (cg-meaning);
    dE/dw_ij = -a_i Delta_j (cg-grad); dropping the skip child is wrong by more than 0.1."""
    G, x, t = skip_example()
    inp, a = G.forward(x)
    Delta = G.error_signals(inp, a, t)
    w = G.w
    D = {"y1": t["y1"] - a["y1"], "y2": t["y2"] - a["y2"]}
    D["u"] = (1 - a["u"] ** 2) * (w["u", "y1"] * D["y1"] + w["u", "y2"] * D["y2"])
    D["h2"] = (1 - a["h2"] ** 2) * (w["h2", "u"] * D["u"] + w["h2", "y2"] * D["y2"])
    D["h1"] = (1 - a["h1"] ** 2) * (w["h1", "u"] * D["u"] + w["h1", "y1"] * D["y1"])
    assert Delta == pytest.approx(D, rel=1e-14)
    nodes = list(G.activation)
    fd = central_differences(lambda e: G.error(x, t, shift=dict(zip(nodes, e, strict=True))),
                             np.zeros(len(nodes)))
    np.testing.assert_allclose([Delta[j] for j in nodes], -fd, atol=1e-8)
    fd_w = central_differences(lambda ws: G.with_weights(ws).error(x, t), G.weights)
    grad = G.gradient(x, t)
    np.testing.assert_allclose([-a[i] * Delta[j] for i, j in G.edges], fd_w, atol=1e-8)
    np.testing.assert_allclose([grad[e] for e in G.edges], fd_w, atol=1e-8)
    only_u = (1 - a["h1"] ** 2) * w["h1", "u"] * D["u"]
    assert abs(only_u + fd[nodes.index("h1")]) > 0.1


def test_bishop_hidden_Delta_is_minus_dE_dh():
    """Bishop's net: Delta_{z_j} = (1 - z_j^2) sum_k w_kj (y_hat_k - y_k) = -dE/dh_j, and the
    graph's gradient is seed 001's eqs. (5.9) and (5.12)."""
    B = bp.bishop_graph(3, 4, 2)
    w1 = np.array([[B.w[f"x{i}", f"z{j}"] for i in (1, 2, 3)] for j in (1, 2, 3, 4)])
    w2 = np.array([[B.w[f"z{j}", f"y{k}"] for j in (1, 2, 3, 4)] for k in (1, 2)])
    x, y_hat = np.array([0.5, -1.0, 0.3]), np.array([0.2, -0.4])
    h, z, y = t2.forward(w1, w2, x)
    Delta = B.error_signals(*B.forward(x), y_hat)
    hidden = np.array([Delta[f"z{j}"] for j in (1, 2, 3, 4)])
    np.testing.assert_allclose(hidden, (1 - z**2) * (w2.T @ (y_hat - y)), rtol=1e-12)

    def E_of_h(hh):
        return t2.E(w2 @ np.tanh(hh), y_hat)

    np.testing.assert_allclose(hidden, -central_differences(E_of_h, h), atol=1e-8)
    grad = B.gradient(x, y_hat)
    np.testing.assert_allclose(
        [[grad[f"x{i}", f"z{j}"] for i in (1, 2, 3)] for j in (1, 2, 3, 4)],
        t2.dE_dw1(w2, x, z, y, y_hat), rtol=1e-12)
    np.testing.assert_allclose([[grad[f"z{j}", f"y{k}"] for j in (1, 2, 3, 4)] for k in (1, 2)],
                               t2.dE_dw2(z, y, y_hat), rtol=1e-12)


# -- (cg-cost) -----------------------------------------------------------------------------------
@settings(max_examples=60)
@given(dags())
def test_the_traces_have_the_step_counts_of_cg_cost(case):
    """forward P + N steps, backward P_c + |O| + N, and with the P products <= 3(P + N)."""
    G, x, t = case
    P, N, O = len(G.edges), len(G.activation), len(G.outputs)
    P_c = sum(i in G.activation for i, _ in G.edges)
    forward = G.forward_trace(x)
    backward = G.backward_trace(*G.forward(x), t)
    assert len(forward) == P + N
    assert len(backward) == P_c + O + N
    assert len(forward) + len(backward) + P <= 3 * (P + N)


# -- the exercises ------------------------------------------------------------------------------
@pytest.mark.parametrize("x, t", [(0.7, -0.2), (-1.3, 0.4), (2.0, 2.0)])
def test_exercise_diamond(x, t):
    G = Graph(["x"], {"p": "identity", "q": "identity", "y": "identity"},
              {("x", "p"): 2.0, ("x", "q"): -1.0, ("p", "y"): 1.0, ("q", "y"): 3.0}, ["y"])
    inp, a = G.forward([x])
    assert a["y"] == pytest.approx(-x)
    Delta = G.error_signals(inp, a, [t])
    assert Delta == pytest.approx({"y": t + x, "p": t + x, "q": 3 * (t + x)})
    grad = G.gradient([x], [t])
    assert grad == pytest.approx({("x", "p"): -x * (t + x), ("x", "q"): -3 * x * (t + x),
                                  ("p", "y"): -2 * x * (t + x), ("q", "y"): x * (t + x)})
    minus_dE_dx = 2.0 * Delta["p"] + (-1.0) * Delta["q"]
    assert minus_dE_dx == pytest.approx(-(t + x))
    fd = central_differences(lambda v: G.error(v, [t]), np.array([x]))
    assert minus_dE_dx == pytest.approx(-fd[0], abs=1e-7)


def all_paths(G, j):
    """Every directed path from j (as a list of nodes), including the path [j]."""
    paths = [[j]]
    for k in G.children[j]:
        paths.extend([j, *p] for p in all_paths(G, k))
    return paths


@settings(max_examples=60)
@given(dags())
def test_exercise_paths_with_identity_activations(case):
    """With every g the identity, Delta_j = sum over paths j -> ... -> k (k an output) of the
    product of the weights along the path times (t_k - a_k)."""
    G, x, t = case
    G = Graph(G.inputs, {j: "identity" for j in G.activation}, G.w, G.outputs, G.constants)
    inp, a = G.forward(x)
    Delta = G.error_signals(inp, a, t)
    target = dict(zip(G.outputs, t, strict=True))
    for j in G.activation:
        total = sum(np.prod([G.w[e] for e in itertools.pairwise(path)])
                    * (target[path[-1]] - a[path[-1]])
                    for path in all_paths(G, j) if path[-1] in target)
        assert Delta[j] == pytest.approx(total, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("r", [1, 2, 3, 5])
def test_exercise_paths_a_chain_of_r_diamonds_has_2_to_the_r_paths(r):
    nodes, edges, last = {}, {}, "x"
    for d in range(r):
        p, q, m = f"p{d}", f"q{d}", f"m{d}"
        nodes.update({p: "identity", q: "identity", m: "identity"})
        edges.update({(last, p): 1.0, (last, q): 1.0, (p, m): 1.0, (q, m): 1.0})
        last = m
    G = Graph(["x"], nodes, edges, [last])
    ends_at_output = [p for p in all_paths(G, "x") if p[-1] == last]
    assert len(ends_at_output) == 2**r
    # and the backward pass does one term per edge: (cg-cost)
    P_c = len(edges) - 2  # all but the two edges out of the input x
    assert len(G.backward_trace(*G.forward([1.0]), [0.0])) == P_c + 1 + len(nodes)


def test_exercise_output_that_feeds_a_node():
    G = Graph(["x"], {"p": "tanh", "q": "sigmoid"}, {("x", "p"): 0.9, ("p", "q"): 1.7}, ["p", "q"])
    x, t = [0.6], [0.8, 0.1]
    inp, a = G.forward(x)
    Delta = G.error_signals(inp, a, t)
    both = (1 - a["p"] ** 2) * ((0.8 - a["p"]) + 1.7 * Delta["q"])
    output_rule = (1 - a["p"] ** 2) * (0.8 - a["p"])
    fd = -central_differences(lambda e: G.error(x, t, shift={"p": e[0]}), np.zeros(1))[0]
    assert Delta["p"] == pytest.approx(both, rel=1e-12)
    assert Delta["p"] == pytest.approx(fd, abs=1e-8)
    assert abs(output_rule - fd) > 1e-2


def test_exercise_two_edges_between_the_same_nodes():
    """A relay identity node r keeps two weights w, w' from i to j: the values are those of one
    edge of weight w + w', and both weights get the derivative -a_i Delta_j."""
    w, w2 = 0.8, -0.3
    relay = Graph(["i"], {"r": "identity", "j": "tanh"},
                  {("i", "j"): w, ("i", "r"): 1.0, ("r", "j"): w2}, ["j"])
    merged = Graph(["i"], {"j": "tanh"}, {("i", "j"): w + w2}, ["j"])
    x, t = [1.4], [0.5]
    assert relay.forward(x)[1]["j"] == pytest.approx(merged.forward(x)[1]["j"], rel=1e-14)
    grad, grad_merged = relay.gradient(x, t), merged.gradient(x, t)
    assert grad["i", "j"] == pytest.approx(grad["r", "j"], rel=1e-14)
    assert grad["i", "j"] == pytest.approx(grad_merged["i", "j"], rel=1e-14)


# -- the proof of cg-thm-backprop: one copy of a_j per use ---------------------------------------
def error_with_copies(G, x, t, j, copies):
    """E_n with the uses of a_j replaced: ``copies[k]`` in in_k for a child k, ``copies[None]``
    in the error term of the output j (the function Psi of the proof); independent of
    course_pkg.graph's forward pass."""
    g = {"identity": lambda v: v, "sigmoid": lambda v: 1 / (1 + np.exp(-v)), "tanh": np.tanh}
    a = dict(x)
    for k in G.order:
        if k in G.activation:
            a[k] = g[G.activation[k]](sum(
                G.w[i, k] * (copies.get(k, a[i]) if i == j else a[i]) for i in G.parents[k]))
    return 0.5 * sum((t[k] - (copies.get(None, a[k]) if k == j else a[k])) ** 2
                     for k in G.outputs)


@pytest.mark.parametrize("j", ["h1", "h2", "u", "y1", "y2"])
def test_proof_steps_on_the_skip_network(j):
    """dPsi/dv_0 = -(t_j - a_j), dPsi/dv_k = w_jk dE/d eps_k, and the chain rule
    dE/d eps_j = g_j'(in_j) (dPsi/dv_0 + sum_k dPsi/dv_k) = -Delta_j."""
    G, x, t = skip_example()
    inp, a = G.forward(x)
    Delta = G.error_signals(inp, a, t)
    uses = [None] if j in G.outputs else []
    uses += G.children[j]
    base = np.full(len(uses), a[j])
    dPsi = central_differences(
        lambda v: error_with_copies(G, x, t, j, dict(zip(uses, v, strict=True))), base)
    assert error_with_copies(G, x, t, j, dict(zip(uses, base, strict=True))) == pytest.approx(
        G.error(x, t), rel=1e-14)
    for use, d in zip(uses, dPsi, strict=True):
        if use is None:
            assert d == pytest.approx(-(t[j] - a[j]), abs=1e-8)
        else:
            dE_deps_k = central_differences(lambda e, k=use: G.error(x, t, shift={k: e[0]}),
                                            np.zeros(1))[0]
            assert d == pytest.approx(G.w[j, use] * dE_deps_k, abs=1e-8)
    g_prime = 1.0 if G.activation[j] == "identity" else 1 - a[j] ** 2
    dE_deps_j = central_differences(lambda e: G.error(x, t, shift={j: e[0]}), np.zeros(1))[0]
    assert g_prime * dPsi.sum() == pytest.approx(dE_deps_j, abs=1e-8)
    assert dE_deps_j == pytest.approx(-Delta[j], abs=1e-8)


# -- the gate view (cg-combine), (cg-delta-gate) -------------------------------------------------
def input_gradients(G, x, t):
    """-dE_n/da_i of every input: the bracket of (cg-delta-gate), one term per child."""
    inp, a = G.forward(x)
    Delta = G.error_signals(inp, a, t)
    return {i: sum(G.w[i, k] * G.local_gradients(k, a)[i] * Delta[k] for k in G.children[i])
            for i in G.inputs}, Delta


def input_differences(G, x, t):
    names = list(x)
    fd = central_differences(lambda v: G.error(dict(zip(names, v, strict=True)), t),
                             np.array([x[i] for i in names]))
    return dict(zip(names, -fd, strict=True))


def test_the_chapter_gate_example():
    """s = xy + max(y, z) at (3, -4, 2), t = 0: add distributes, multiply swaps, max routes,
    the copy of y adds."""
    G = Graph(["x", "y", "z"], {"q": "identity", "m": "identity", "s": "identity"},
              {("x", "q"): 1.0, ("y", "q"): 1.0, ("y", "m"): 1.0, ("z", "m"): 1.0,
               ("q", "s"): 1.0, ("m", "s"): 1.0}, ["s"], combine={"q": "product", "m": "max"})
    x = {"x": 3.0, "y": -4.0, "z": 2.0}
    grads, Delta = input_gradients(G, x, [0.0])
    s = 3.0 * -4.0 + max(-4.0, 2.0)
    assert s == -10.0 and G.error(x, [0.0]) == 50.0
    assert Delta == {"s": 10.0, "q": 10.0, "m": 10.0}                 # add distributes
    assert grads == {"x": -40.0, "y": 30.0, "z": 10.0}                # swap, route, add
    # E = (xy + max(y, z))^2 / 2: dE/dx = s y, dE/dy = s x (z wins the max), dE/dz = s
    assert grads == {"x": -s * -4.0, "y": -s * 3.0, "z": -s}
    fd = input_differences(G, x, [0.0])
    for i in x:
        assert fd[i] == pytest.approx(grads[i], abs=1e-6)


def test_exercise_gates_by_hand():
    G = Graph(["x", "y", "z"], {"p": "identity", "m": "identity", "f": "identity"},
              {("x", "p"): 1.0, ("y", "p"): 1.0, ("y", "m"): 1.0, ("z", "m"): 1.0,
               ("p", "f"): 1.0, ("m", "f"): 1.0}, ["f"], combine={"m": "max", "f": "product"})
    x = {"x": 1.0, "y": 2.0, "z": -1.0}
    grads, Delta = input_gradients(G, x, [10.0])
    assert Delta == {"f": 4.0, "p": 8.0, "m": 12.0}
    assert grads == {"x": 8.0, "y": 20.0, "z": 0.0}
    fd = input_differences(G, x, [10.0])
    for i in x:
        assert fd[i] == pytest.approx(grads[i], abs=1e-6)


# -- reverse mode as vector-Jacobian products (cg-vjp) ---------------------------------------------
def test_back_propagation_from_v_is_pytorchs_backward_with_gradient_v():
    """y.backward(gradient=V) on a batch equals course_pkg.back_propagate from delta_L = V^T."""
    torch = pytest.importorskip("torch")
    import course_pkg as cp

    net = cp.Network([3, 4, 2], ["tanh", "identity"], seed=5)
    rng = np.random.default_rng(8)
    X, V = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    z, a = net.forward(X)
    dW, db, _ = cp.back_propagate(net.W, z, a, V.T, net.S_prime)
    W1, W2 = (torch.tensor(net.W[l], requires_grad=True) for l in (1, 2))
    b1, b2 = (torch.tensor(net.b[l], requires_grad=True) for l in (1, 2))
    Y = torch.tanh(torch.tensor(X) @ W1.T + b1) @ W2.T + b2
    Y.backward(gradient=torch.tensor(V))
    for ours, theirs in ((dW[1], W1), (dW[2], W2), (db[1], b1), (db[2], b2)):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_the_chapter_vjp_and_the_jacobian_row_by_row():
    import course_pkg as cp

    net = cp.Network([3, 4, 2], ["tanh", "identity"], seed=5)
    x, v = np.array([0.3, -1.2, 0.8]), np.array([2.0, -0.5])
    z, a = net.forward(x[None, :])
    W1 = net.W[1].copy()

    def g(flat):
        probe = net.copy()
        probe.W[1][...] = flat.reshape(W1.shape)
        return probe.predict(x[None, :])[0]

    J = np.column_stack([(g(W1.ravel() + 1e-6 * e) - g(W1.ravel() - 1e-6 * e)) / 2e-6
                         for e in np.eye(W1.size)])
    vjp = cp.back_propagate(net.W, z, a, v[:, None], net.S_prime)[0][1].ravel()
    np.testing.assert_allclose(vjp, v @ J, atol=1e-8)
    rows = [cp.back_propagate(net.W, z, a, e[:, None], net.S_prime)[0][1].ravel()
            for e in np.eye(2)]
    np.testing.assert_allclose(rows, J, atol=1e-8)
    # the layer's Jacobian dz_2/dz_1 = W_2 D_1, and delta_1 = D_1 W_2^T delta_2 = (W_2 D_1)^T v
    D1 = np.diag(1 - np.tanh(z[1][:, 0]) ** 2)
    _, _, delta = cp.back_propagate(net.W, z, a, v[:, None], net.S_prime)
    np.testing.assert_allclose(delta[1][:, 0], (net.W[2] @ D1).T @ v, rtol=1e-12)


def test_exercise_vjp_with_graph_targets_a_plus_v():
    import course_pkg as cp

    rng = np.random.default_rng(2)
    W = [rng.normal(size=(4, 3)), rng.normal(size=(2, 4))]
    b = [rng.normal(size=4), rng.normal(size=2)]
    G = Graph.from_layers(W, b, ["tanh", "identity"])
    net = cp.Network([3, 4, 2], ["tanh", "identity"], weights=W, biases=b)
    x, v = rng.normal(size=3), np.array([0.7, -1.3])
    _, a = G.forward(x)
    grad = G.gradient(x, [a[2, 0] + v[0], a[2, 1] + v[1]])
    z, a_net = net.forward(x[None, :])
    dW, db, _ = cp.back_propagate(net.W, z, a_net, -v[:, None], net.S_prime)
    for l in (1, 2):
        for k in range(net.sizes[l]):
            assert grad["bias", (l, k)] == pytest.approx(db[l][k], abs=1e-12)
            for i in range(net.sizes[l - 1]):
                assert grad[(l - 1, i), (l, k)] == pytest.approx(dW[l][k, i], abs=1e-12)


# -- no label slug in what the chapters print or plot ---------------------------------------------
@pytest.mark.parametrize("page", ["computational_graphs", "gradient_checking", "initialisation",
                                  "efficiency", "fast_step"])
def test_code_cells_print_no_label_slugs(page):
    """Printed outputs and legends show equation numbers or words, never "(gc-kink)"."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "book" / f"{page}.md").read_text()
    cells = re.findall(r"```\{code-cell\}.*?```", text, flags=re.DOTALL)
    assert cells
    slugs = [m for cell in cells for m in re.findall(r"\((?:gc|init|cg|eff|nd|mf|we|fast)-\w",
                                                     cell)]
    assert slugs == []

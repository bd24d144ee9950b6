"""Back-propagation on any directed acyclic graph of nodes (reverse mode).

The notation is that of ``003_00675a7c1b711b2c.txt``. Every computing node j adds what arrives
on its incoming edges and applies its activation g_j:

    in_j = sum_{i in parents(j)} w_ij a_i ,        a_j = g_j(in_j) ,

where w_ij is the weight on the edge i -> j. Input nodes output the components of the example,
constant nodes a fixed number (a constant 1 carries the biases, which the seed's network lacks).
Some computing nodes are outputs k with targets t_k, and the error of one example is

    E_n = 1/2 sum_{k in outputs} (t_k - a_k)^2 .

The seed's proof runs over "the nodes that receive input from j", which is all it needs: the
same argument holds on any acyclic graph, by induction over the nodes in reverse topological
order. The error signal Delta_j = -dE_n/d in_j of a computing node j is

    Delta_j = g_j'(in_j) * ( [j is an output] (t_j - a_j) + sum_{k in children(j)} w_jk Delta_k ),

the bracket being -dE_n/da_j, summed over every node that a_j feeds (eq. (1) of the seed when
the graph is layered). Every weight then has -dE_n/dw_ij = a_i Delta_j, and one step of the
seed's rule w_ij <- w_ij + eta a_i Delta_j is a gradient descent step on E_n.

A computing node may also *combine* its incoming terms u_ij = w_ij a_i in another way than by
a sum: by a product (a multiply gate) or by their maximum (a max gate),

    in_j = prod_{i in parents(j)} w_ij a_i      or      in_j = max_{i in parents(j)} w_ij a_i .

Then each incoming term has a *local gradient* lambda_ij = d in_j / d u_ij: 1 for a sum, the
product of the other terms for a product, and 1 for the first largest term of a max (0 for the
others). The same induction gives

    Delta_j = g_j'(in_j) * ( [j is an output] (t_j - a_j) + sum_k w_jk lambda_jk Delta_k ) ,
    -dE_n/dw_ij = a_i lambda_ij Delta_j ,

the "local gradient times upstream gradient" of the gate view; with sums only, every lambda is 1
and these are the formulas above.

The loops run over nodes and edges on purpose, as in :mod:`course_pkg.node_delta`: this is the
node-level view, for small graphs. Node names may be any hashable values (strings, or the
``(l, k)`` pairs of :meth:`Graph.from_layers`).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from course_pkg import activations

Node = Hashable
Edge = tuple[Node, Node]

BIAS = "bias"
"""Name of the constant node (a_bias = 1) that :meth:`Graph.from_layers` adds for the biases."""

COMBINE = ("sum", "product", "max")
"""How a computing node combines its incoming terms w_ij a_i into in_j."""


@dataclass(frozen=True)
class Step:
    """One step of :meth:`Graph.forward_trace` or :meth:`Graph.backward_trace`.

    Attributes
    ----------
    node
        The node j whose error signal is being computed.
    kind
        Forward: ``"parent"`` combines w_ij a_i of the parent i = ``source`` into in_j (adds it,
        multiplies by it, or takes the maximum, by the node's combine); ``"shift"`` adds a
        perturbation eps_j; ``"g"`` applies g_j (``term`` is in_j, ``total`` a_j).
        Backward: ``"error"`` adds the output term t_j - a_j; ``"child"`` adds
        w_jk lambda_jk Delta_k of the child k = ``source`` (lambda_jk = 1 for a sum node);
        ``"g_prime"`` multiplies the sum by g_j'(in_j) (``term``), which gives Delta_j
        (``total``).
    source
        The parent i of a ``"parent"`` step or the child k of a ``"child"`` step, else None.
    term
        The number added, or for ``"g"`` the input in_j and for ``"g_prime"`` the factor
        g_j'(in_j).
    total
        After the step: the running sum, product or maximum (in_j forward), the running sum
        (-dE_n/da_j backward), or a_j after ``"g"`` and Delta_j after ``"g_prime"``.
    """

    node: Node
    kind: str
    source: Node | None
    term: float
    total: float


def _number(value: Any, what: str) -> float:
    """A finite real number, or a ValueError naming ``what``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a real number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return number


def topological_order(nodes: Sequence[Node], edges: Sequence[Edge]) -> list[Node]:
    """The nodes ordered so that every edge i -> j has i before j (Kahn's algorithm).

    Among the nodes that are ready (all their parents placed), the one listed first in
    ``nodes`` goes first, so the order is reproducible.

    Raises
    ------
    ValueError
        If an edge names a node not in ``nodes``, or the edges contain a cycle (the message
        lists one).
    """
    known = set(nodes)
    for i, j in edges:
        for end in (i, j):
            if end not in known:
                raise ValueError(f"edge {i!r} -> {j!r} names the unknown node {end!r}; "
                                 f"the nodes are {list(nodes)}")
    n_parents = {v: 0 for v in nodes}
    children: dict[Node, list[Node]] = {v: [] for v in nodes}
    for i, j in edges:
        n_parents[j] += 1
        children[i].append(j)
    rank = {v: r for r, v in enumerate(nodes)}
    ready = sorted((v for v in nodes if n_parents[v] == 0), key=rank.__getitem__)
    order = []
    while ready:
        v = ready.pop(0)
        order.append(v)
        for k in children[v]:
            n_parents[k] -= 1
            if n_parents[k] == 0:
                ready.append(k)
                ready.sort(key=rank.__getitem__)
    if len(order) < len(nodes):
        cycle = _find_cycle([v for v in nodes if n_parents[v] > 0], children)[:-1]
        first = min(range(len(cycle)), key=lambda p: rank[cycle[p]])
        cycle = [*cycle[first:], *cycle[:first], cycle[first]]  # from the first-listed node
        raise ValueError("the edges contain a cycle, " + " -> ".join(map(repr, cycle))
                         + "; a computational graph must be acyclic")
    return order


def _find_cycle(left: list[Node], children: Mapping[Node, list[Node]]) -> list[Node]:
    """One cycle among the nodes Kahn's algorithm could not place (each has a parent there)."""
    remaining = set(left)
    parent_in_left = {}
    for i, ks in children.items():
        for k in ks:
            if i in remaining and k in remaining:
                parent_in_left.setdefault(k, i)
    path, seen = [left[0]], {left[0]: 0}
    while True:  # walk backwards along parents; every remaining node has one, so we loop
        v = parent_in_left[path[-1]]
        if v in seen:
            cycle = path[seen[v]:][::-1]
            return [*cycle, cycle[0]]
        seen[v] = len(path)
        path.append(v)


class Graph:
    """A computational graph: a DAG of nodes with weighted edges, in seed 003's notation.

    Parameters
    ----------
    inputs
        Names of the input nodes: ``a_i`` is the example's value for node i.
    nodes
        Computing node name -> the name of its activation g_j (a componentwise activation of
        :mod:`course_pkg.activations`: identity, sigmoid, tanh, relu).
    edges
        (i, j) -> w_ij, the weight on the edge from node i to the computing node j.
    outputs
        The computing nodes k that have targets t_k in E_n = 1/2 sum_k (t_k - a_k)^2. An
        output may also feed other nodes.
    constants
        Node name -> its fixed output (e.g. ``{"bias": 1.0}``); like an input, with no
        incoming edge.
    combine
        Computing node -> ``"sum"`` (the default for every node not named), ``"product"`` or
        ``"max"``: how in_j is formed from the terms w_ij a_i of its parents. A product or max
        node needs at least one parent.

    Attributes
    ----------
    inputs, outputs
        The input and output node names, as given.
    constants
        Constant node -> its output.
    activation
        Computing node -> the name of its g_j, in the order given.
    combine
        Computing node -> ``"sum"``, ``"product"`` or ``"max"``.
    w
        (i, j) -> w_ij.
    order
        All nodes in topological order (:func:`topological_order` of the nodes as listed:
        inputs, constants, then computing nodes).
    parents, children
        node -> the nodes on its incoming / outgoing edges, in topological order.
    edges
        The edges (i, j), in the order given; :attr:`weights` follows it.
    """

    def __init__(self, inputs: Sequence[Node], nodes: Mapping[Node, str],
                 edges: Mapping[Edge, float], outputs: Sequence[Node],
                 constants: Mapping[Node, float] | None = None,
                 combine: Mapping[Node, str] | None = None) -> None:
        self.inputs = tuple(inputs)
        self.constants = {c: _number(v, f"the value of constant node {c!r}")
                          for c, v in dict(constants or {}).items()}
        if not isinstance(nodes, Mapping):
            raise ValueError("nodes must be a mapping {name: activation name}, got "
                             f"{type(nodes).__name__}")
        self.activation = dict(nodes)
        names = [*self.inputs, *self.constants, *self.activation]
        if len(set(names)) != len(names):
            twice = sorted({repr(v) for v in names if names.count(v) > 1})
            raise ValueError(f"every node needs its own name; used more than once: {twice}")
        if not self.activation:
            raise ValueError("a graph needs at least one computing node (nodes={name: g})")
        self._g = {}
        for j, name in self.activation.items():
            S, S_prime = activations.get(name)
            if S_prime is None:
                raise ValueError(f"node {j!r}: node-level deltas need a componentwise "
                                 f"activation, one of {list(activations.COMPONENTWISE)}; "
                                 f"got {name!r}")
            self._g[j] = (S, S_prime)

        if not isinstance(edges, Mapping):
            raise ValueError("edges must be a mapping {(i, j): w_ij}, got "
                             f"{type(edges).__name__}")
        self.edges: tuple[Edge, ...] = tuple(edges)
        for edge in self.edges:
            if not (isinstance(edge, tuple) and len(edge) == 2):
                raise ValueError(f"an edge is a pair (i, j) of node names, got {edge!r}")
        self.order = topological_order(names, self.edges)
        for i, j in self.edges:
            if j not in self.activation:
                raise ValueError(f"edge {i!r} -> {j!r} ends at an input or constant node; "
                                 f"only computing nodes {list(self.activation)} have inputs")
        self.w = {e: _number(edges[e], f"the weight w of edge {e[0]!r} -> {e[1]!r}")
                  for e in self.edges}

        self.outputs = tuple(outputs)
        if not self.outputs:
            raise ValueError("a graph needs at least one output node (outputs=[...])")
        for k in self.outputs:
            if k not in self.activation:
                raise ValueError(f"output {k!r} must be one of the computing nodes "
                                 f"{list(self.activation)}")
        if len(set(self.outputs)) != len(self.outputs):
            raise ValueError(f"an output is listed twice in {list(self.outputs)}")

        position = {v: p for p, v in enumerate(self.order)}
        self.parents: dict[Node, list[Node]] = {v: [] for v in self.order}
        self.children: dict[Node, list[Node]] = {v: [] for v in self.order}
        for i, j in sorted(self.edges, key=lambda e: (position[e[0]], position[e[1]])):
            self.parents[j].append(i)
            self.children[i].append(j)
        for v in self.order:
            self.parents[v].sort(key=position.__getitem__)
        self.combine = self._check_combine(combine)

    def _check_combine(self, combine: Mapping[Node, str] | None) -> dict[Node, str]:
        """node -> "sum" | "product" | "max" for every computing node, checked."""
        given = dict(combine or {})
        for j, how in given.items():
            if j not in self.activation:
                raise ValueError(f"combine names {j!r}, which is not a computing node; the "
                                 f"computing nodes are {list(self.activation)}")
            if how not in COMBINE:
                raise ValueError(f"node {j!r}: combine must be one of {list(COMBINE)}, "
                                 f"got {how!r}")
            if how != "sum" and not self.parents[j]:
                raise ValueError(f"node {j!r}: a {how} node needs at least one incoming edge")
        return {j: given.get(j, "sum") for j in self.activation}

    def local_gradients(self, j: Node, a: Mapping[Node, float]) -> dict[Node, float]:
        """lambda_ij = d in_j / d(w_ij a_i) for every parent i of the computing node j.

        1 for a sum node; the product of the other terms for a product node; for a max node 1
        for the first parent (in topological order) whose term is largest and 0 for the others.

        Parameters
        ----------
        j
            A computing node.
        a
            node -> a_i, as returned by :meth:`forward`.
        """
        if j not in self.activation:
            raise ValueError(f"{j!r} is not a computing node; the computing nodes are "
                             f"{list(self.activation)}")
        terms = {i: self.w[i, j] * a[i] for i in self.parents[j]}
        how = self.combine[j]
        if how == "sum":
            return {i: 1.0 for i in terms}
        if how == "product":
            return {i: math.prod(u for m, u in terms.items() if m != i) for i in terms}
        winner = max(terms, key=terms.__getitem__)          # the first of the largest
        return {i: float(i == winner) for i in terms}

    # -- building ------------------------------------------------------------------------------
    @classmethod
    def from_layers(cls, weights: Sequence[Any], biases: Sequence[Any] | None = None,
                    activations: Sequence[str] | str = "sigmoid") -> Graph:
        """The layered network of :class:`course_pkg.Network` as a graph.

        Node ``(l, k)`` is unit k of layer l (l = 0 the inputs); the edge ``(l-1, i) -> (l, k)``
        carries ``W_l[k, i]`` (shape (p_l, p_{l-1}) as in ``002_ff83eee082f91d18.txt``). With
        ``biases``, a constant node ``BIAS`` = 1 feeds every unit, with weight ``b_l[k]``.

        Parameters
        ----------
        weights
            [W_1, ..., W_L].
        biases
            [b_1, ..., b_L], or None for a network without biases (as in seed 003).
        activations
            One name per layer 1..L, or one name for all of them.
        """
        W = [np.asarray(W_l, dtype=float) for W_l in weights]
        if not W:
            raise ValueError("expected at least one weight matrix W_1")
        L = len(W)
        sizes = [W[0].shape[1] if W[0].ndim == 2 else -1]
        for l, W_l in enumerate(W, 1):
            if W_l.ndim != 2 or W_l.shape[1] != sizes[-1]:
                raise ValueError(f"W_{l} should have shape (p_{l}, p_{l - 1}) with "
                                 f"p_{l - 1} = {sizes[-1]}, got {W_l.shape}")
            sizes.append(W_l.shape[0])
        names = [activations] * L if isinstance(activations, str) else list(activations)
        if len(names) != L:
            raise ValueError(f"expected {L} activation names (one per layer), got {len(names)}")
        b = None
        if biases is not None:
            b = [np.asarray(b_l, dtype=float) for b_l in biases]
            if len(b) != L:
                raise ValueError(f"expected {L} bias vectors, got {len(b)}")
            for l, b_l in enumerate(b, 1):
                if b_l.shape != (sizes[l],):
                    raise ValueError(f"b_{l} should have shape ({sizes[l]},), got {b_l.shape}")
        nodes = {(l, k): names[l - 1] for l in range(1, L + 1) for k in range(sizes[l])}
        edges: dict[Edge, float] = {}
        for l in range(1, L + 1):
            for k in range(sizes[l]):
                if b is not None:
                    edges[(BIAS, (l, k))] = b[l - 1][k]
                for i in range(sizes[l - 1]):
                    edges[((l - 1, i), (l, k))] = W[l - 1][k, i]
        return cls(inputs=[(0, i) for i in range(sizes[0])], nodes=nodes, edges=edges,
                   outputs=[(L, k) for k in range(sizes[L])],
                   constants=None if b is None else {BIAS: 1.0})

    @property
    def weights(self) -> np.ndarray:
        """The weights w_ij as one array, in the order of :attr:`edges`."""
        return np.array([self.w[e] for e in self.edges], dtype=float)

    def with_weights(self, weights: Any) -> Graph:
        """The same graph with other weights: an array in the order of :attr:`edges`, or a
        mapping (i, j) -> w_ij for some of the edges (the others keep theirs)."""
        if isinstance(weights, Mapping):
            for e in weights:
                if e not in self.w:
                    raise ValueError(f"{e!r} is not an edge of this graph")
            new = {**self.w, **weights}
        else:
            values = np.asarray(weights, dtype=float)
            if values.shape != (len(self.edges),):
                raise ValueError(f"expected {len(self.edges)} weights (one per edge), "
                                 f"got an array of shape {values.shape}")
            new = dict(zip(self.edges, values.tolist(), strict=True))
        return Graph(self.inputs, self.activation, new, self.outputs, self.constants,
                     self.combine)

    # -- checking the data of one example -------------------------------------------------------
    def _values(self, values: Any, names: tuple[Node, ...], what: str) -> dict[Node, float]:
        if isinstance(values, Mapping):
            if set(values) != set(names):
                missing = [v for v in names if v not in values]
                extra = [v for v in values if v not in names]
                raise ValueError(f"expected {what} for exactly the nodes {list(names)}; "
                                 f"missing {missing}, unknown {extra}")
            return {v: _number(values[v], f"the {what} of node {v!r}") for v in names}
        try:
            array = np.asarray(values, dtype=float)
        except (TypeError, ValueError):
            array = None
        if array is None or array.shape != (len(names),):
            raise ValueError(f"expected {len(names)} {what} (one per node {list(names)}), "
                             f"got shape {np.shape(values)}")
        return {v: _number(x, f"the {what} of node {v!r}") for v, x in zip(names, array,
                                                                             strict=True)}

    # -- the forward pass -------------------------------------------------------------------------
    def forward_trace(self, x: Any, shift: Mapping[Node, float] | None = None) -> list[Step]:
        """The forward pass, one :class:`Step` at a time, in topological order.

        For each computing node j: combine w_ij a_i over its parents i (already computed: i
        comes before j in the order) by the node's sum, product or maximum, add the shift eps_j
        if one is given, then apply g_j. The result is in_j, and the last step's ``total`` is
        a_j = g_j(in_j).

        Parameters
        ----------
        x
            The example: a value per input node (a mapping, or a sequence in the order of
            ``inputs``).
        shift
            Optional amounts eps_j added to in_j (the perturbation of the proof: Delta_j is
            -dE_n/d eps_j at eps = 0).
        """
        a = self._values(x, self.inputs, "input values")
        a.update(self.constants)
        shift = dict(shift or {})
        for j in shift:
            if j not in self.activation:
                raise ValueError(f"a shift applies to computing nodes {list(self.activation)}; "
                                 f"got {j!r}")
        steps = []
        for j in self.order:
            if j not in self.activation:
                continue
            how = self.combine[j]
            total = 0.0
            for n_seen, i in enumerate(self.parents[j]):
                term = self.w[i, j] * a[i]
                if how == "sum":
                    total += term
                elif n_seen == 0:
                    total = term
                elif how == "product":
                    total *= term
                else:
                    total = max(total, term)
                steps.append(Step(j, "parent", i, term, total))
            if j in shift:
                total += _number(shift[j], f"the shift of node {j!r}")
                steps.append(Step(j, "shift", None, shift[j], total))
            a[j] = float(self._g[j][0](np.float64(total), np))
            steps.append(Step(j, "g", None, total, a[j]))
        return steps

    def forward(self, x: Any, shift: Mapping[Node, float] | None = None
                ) -> tuple[dict[Node, float], dict[Node, float]]:
        """in_j = sum_i w_ij a_i (+ eps_j) and a_j = g_j(in_j), in topological order.

        Takes the arguments of :meth:`forward_trace`.

        Returns
        -------
        inp, a
            node -> in_j (computing nodes only) and node -> a_j (every node).
        """
        a = self._values(x, self.inputs, "input values")
        a.update(self.constants)
        inp = {}
        for step in self.forward_trace(x, shift):
            if step.kind == "g":
                inp[step.node], a[step.node] = step.term, step.total
        return inp, a

    def error(self, x: Any, t: Any, shift: Mapping[Node, float] | None = None) -> float:
        """E_n = 1/2 sum_k (t_k - a_k)^2 over the output nodes, for one example."""
        t = self._values(t, self.outputs, "targets")
        _, a = self.forward(x, shift)
        return 0.5 * sum((t[k] - a[k]) ** 2 for k in self.outputs)

    # -- the backward pass ------------------------------------------------------------------------
    def backward_trace(self, inp: Mapping[Node, float], a: Mapping[Node, float],
                       t: Any) -> list[Step]:
        """The backward pass, one :class:`Step` at a time, in reverse topological order.

        For each computing node j (last in the order first): start from 0, add t_j - a_j if j
        is an output, add w_jk lambda_jk Delta_k for each child k (already computed: k comes
        after j in the order; lambda_jk of :meth:`local_gradients`, 1 for a sum node), then
        multiply by g_j'(in_j). The sum before the last step is -dE_n/da_j, and the product is
        Delta_j = -dE_n/d in_j.
        """
        t = self._values(t, self.outputs, "targets")
        missing = [j for j in self.activation if j not in inp or j not in a]
        if missing:
            raise ValueError(f"inp and a must come from forward(); no values for {missing}")
        Delta: dict[Node, float] = {}
        local = {k: self.local_gradients(k, a) for k in self.activation}
        steps = []
        for j in reversed(self.order):
            if j not in self.activation:
                continue
            total = 0.0
            if j in t:
                total += t[j] - a[j]
                steps.append(Step(j, "error", None, t[j] - a[j], total))
            for k in self.children[j]:
                term = self.w[j, k] * local[k][j] * Delta[k]
                total += term
                steps.append(Step(j, "child", k, term, total))
            g_prime = float(self._g[j][1](np.float64(inp[j]), np))
            Delta[j] = g_prime * total
            steps.append(Step(j, "g_prime", None, g_prime, Delta[j]))
        return steps

    def error_signals(self, inp: Mapping[Node, float], a: Mapping[Node, float],
                      t: Any) -> dict[Node, float]:
        """Delta_j = g_j'(in_j) ([j output](t_j - a_j) + sum_k w_jk lambda_jk Delta_k) for
        every computing node j: the last step of each node in :meth:`backward_trace`."""
        return {s.node: s.total for s in self.backward_trace(inp, a, t) if s.kind == "g_prime"}

    def gradient(self, x: Any, t: Any) -> dict[Edge, float]:
        """dE_n/dw_ij = -a_i lambda_ij Delta_j for every edge (forward, then backward);
        lambda_ij = 1 on the edges into sum nodes."""
        inp, a = self.forward(x)
        Delta = self.error_signals(inp, a, t)
        local = {j: self.local_gradients(j, a) for j in self.activation}
        return {(i, j): -a[i] * local[j][i] * Delta[j] for i, j in self.edges}

    def update(self, x: Any, t: Any, eta: float) -> Graph:
        """One step of the seed's rule w_ij <- w_ij + eta a_i Delta_j; returns a new graph."""
        eta = _number(eta, "the step size eta")
        if eta <= 0:
            raise ValueError(f"the step size eta must be positive, got {eta}")
        grad = self.gradient(x, t)
        return self.with_weights({e: self.w[e] - eta * grad[e] for e in self.edges})

    def __repr__(self) -> str:
        gates = sorted({how for how in self.combine.values() if how != "sum"})
        kinds = f" ({', '.join(gates)} nodes)" if gates else ""
        return (f"Graph({len(self.inputs)} inputs, {len(self.constants)} constants, "
                f"{len(self.activation)} computing nodes{kinds}, {len(self.edges)} edges, "
                f"outputs {list(self.outputs)})")

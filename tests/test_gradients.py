"""Back-propagation against finite differences (``course_pkg.gradient_check``).

The property-based test draws random architectures (1-4 layers, widths 1-16), every hidden
activation, every output activation with the squared losses, and softmax with cross-entropy,
and requires a relative error below 1e-6 in float64. The relu kink is avoided: a finite
difference across it measures a one-sided slope, not the derivative.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import course_pkg as cp
from course_pkg.gradcheck import finite_difference_gradients, relative_error

COMPONENTWISE = ["identity", "sigmoid", "tanh", "relu"]
SQUARED = ["half_squared_error", "squared_error"]
TOLERANCE = 1e-6
KINK_MARGIN = 1e-2  # the stencil moves z by at most 2h |a| ~ 1e-3: stay well clear of 0


def make_batch(net: cp.Network, n: int, rng: np.random.Generator):
    X = rng.standard_normal((n, net.sizes[0]))
    if net.loss_name == "cross_entropy":
        Y = rng.integers(0, net.sizes[-1], size=n)
    else:
        Y = rng.standard_normal((n, net.sizes[-1]))
    return X, Y


def min_relu_distance(net: cp.Network, X: np.ndarray) -> float:
    """The smallest |z| that enters a relu: how close the batch comes to a kink."""
    z, _ = net.forward(X)
    dists = [np.min(np.abs(z[l])) for l, name in enumerate(net.activation_names, 1)
             if name == "relu"]
    return float(min(dists, default=np.inf))


@st.composite
def networks(draw, output: str):
    L = draw(st.integers(1, 4))
    sizes = draw(st.lists(st.integers(1, 16), min_size=L + 1, max_size=L + 1))
    hidden = draw(st.lists(st.sampled_from(COMPONENTWISE), min_size=L - 1, max_size=L - 1))
    if output == "softmax":
        activations, loss = [*hidden, "softmax"], "cross_entropy"
    else:
        activations = [*hidden, draw(st.sampled_from(COMPONENTWISE))]
        loss = draw(st.sampled_from(SQUARED))
    net = cp.Network(sizes, activations, loss, seed=draw(st.integers(0, 2**32 - 1)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X, Y = make_batch(net, draw(st.integers(1, 4)), rng)
    return net, X, Y


@given(networks(output="componentwise"))
def test_squared_losses_match_finite_differences(case):
    net, X, Y = case
    assume(min_relu_distance(net, X) > KINK_MARGIN)
    assert cp.gradient_check(net, X, Y) < TOLERANCE


@given(networks(output="softmax"))
def test_softmax_cross_entropy_matches_finite_differences(case):
    net, X, Y = case
    assume(min_relu_distance(net, X) > KINK_MARGIN)
    assert cp.gradient_check(net, X, Y) < TOLERANCE


PAIRS = [(h, o, loss) for h, o, loss in itertools.product(COMPONENTWISE, COMPONENTWISE, SQUARED)]
PAIRS += [(h, "softmax", "cross_entropy") for h in COMPONENTWISE]


@pytest.mark.parametrize(("hidden", "output", "loss"), PAIRS)
def test_every_activation_and_loss_pair(hidden, output, loss, rng):
    """Each pair once, deterministically, on a 3-5-4-3 network (hypothesis samples them)."""
    net = cp.Network([3, 5, 4, 3], [hidden, hidden, output], loss, seed=1)
    X, Y = make_batch(net, 4, rng)
    while min_relu_distance(net, X) <= KINK_MARGIN:  # redraw until clear of the relu kink
        X, Y = make_batch(net, 4, rng)
    assert cp.gradient_check(net, X, Y) < TOLERANCE


def test_check_detects_a_wrong_derivative(rng, monkeypatch):
    """The oracle can fail: a tanh layer whose S' is off by a factor 1.01 is caught."""
    net = cp.Network([3, 4, 2], ["tanh", "identity"], "half_squared_error", seed=2)
    X, Y = make_batch(net, 5, rng)
    assert cp.gradient_check(net, X, Y) < TOLERANCE
    right = net.S_prime[1]
    monkeypatch.setitem(net.S_prime, 1, lambda z, xp: 1.01 * right(z, xp))
    assert cp.gradient_check(net, X, Y) > 1e-3


def test_delta_is_the_derivative_with_respect_to_z(rng):
    """Eq. (2) of 002: for one example, delta_l = dC/dz_l, which is also dC/db_l."""
    net = cp.Network([4, 6, 5, 3], ["sigmoid", "tanh", "softmax"], "cross_entropy", seed=3)
    X, Y = make_batch(net, 1, rng)
    z, a = net.forward(X)
    delta_L = cp.losses.output_delta(net.loss_name, None, z[3], a[3], Y, np)
    _, _, delta = cp.back_propagate(net.W, z, a, delta_L, net.S_prime)
    _, fd_b = finite_difference_gradients(net, X, Y)
    for l in (1, 2, 3):
        assert relative_error(delta[l][:, 0], fd_b[l - 1]) < TOLERANCE


def test_second_order_stencil_agrees(rng):
    net = cp.Network([3, 4, 2], ["sigmoid", "identity"], "squared_error", seed=4)
    X, Y = make_batch(net, 3, rng)
    two = finite_difference_gradients(net, X, Y, h=1e-5, order=2)
    four = finite_difference_gradients(net, X, Y)
    for a, b in zip([*two[0], *two[1]], [*four[0], *four[1]], strict=True):
        assert relative_error(a, b, 1e-6) < 1e-5


@pytest.mark.parametrize("kwargs", [{"order": 3}, {"h": 0.0}, {"h": float("nan")}])
def test_finite_difference_arguments_are_checked(kwargs, rng):
    net = cp.Network([2, 2], "identity", seed=0)
    with pytest.raises(ValueError, match="order|step h"):
        finite_difference_gradients(net, rng.standard_normal((1, 2)), np.zeros((1, 2)), **kwargs)

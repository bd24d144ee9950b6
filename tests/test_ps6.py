"""Problem set 6 (gradient checking): the layer library, its checks, the solution, the mistakes.

As in ``tests/test_ps5.py``: the solution is the source notebook's own code, run here; each
mistake is that code with one line changed as a student would change it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import problem_set_helpers as helpers
import pytest

from course_pkg import layers
from course_pkg.checks import gradient_checking as gc
from course_pkg.checks.feedback import Feedback

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "assignments" / "source" / "ps6" / "ps6.ipynb"
CHECKS = {
    "central_difference": ("check_central_difference", "central_difference"),
    "relative_error": ("check_relative_error", "relative_error"),
    "step_for": ("check_step", "step_for"),
    "crosses_kink": ("check_crosses_kink", "crosses_kink"),
    "layer_errors": ("check_layer_errors", "layer_errors"),
    "diagnosis": ("check_diagnosis", "diagnosis"),
}
NUMBER = re.compile(r"\d\.\d{3,}|array\(|\[\s*-?\d+\.\d")


def cells() -> list[dict]:
    return helpers.cells(NOTEBOOK)


def student(changes: dict[str, tuple[str, str]] | None = None) -> dict:
    """The notebook's namespace after its answer cells, with the student's ``changes``."""
    return helpers.student(NOTEBOOK, changes, last="diagnosis")


def tag_of(check: str, function, seed: int | None = None) -> str | None:
    return helpers.tag_of(gc, check, function, seed)


@pytest.fixture(scope="module")
def solution() -> dict:
    return student()


@pytest.mark.parametrize("cell", sorted(CHECKS))
@pytest.mark.parametrize("seed", [None, 0, 1, 2])
def test_the_solution_passes_visible_and_hidden_cases(solution, cell, seed):
    check, name = CHECKS[cell]
    assert tag_of(check, solution[name], seed) is None


WRITTEN = [
    ("central_difference", "(f(up) - f(down)) / (2 * h)", "(f(up) - f(x)) / h", "not central"),
    ("central_difference", "(f(up) - f(down)) / (2 * h)", "(f(up) - f(down)) / h",
     "step factor"),
    ("central_difference", "(f(up) - f(down)) / (2 * h)", "(f(down) - f(up)) / (2 * h)",
     "sign flipped"),
    ("relative_error", "np.maximum(floor, np.abs(a) + np.abs(b))",
     "np.maximum(floor, np.maximum(np.abs(a), np.abs(b)))", "denominator"),
    ("relative_error", "np.maximum(floor, np.abs(a) + np.abs(b))", "(np.abs(a) + np.abs(b))",
     "denominator"),
    ("relative_error", "float(np.max(", "float(np.mean(", "mean instead of max"),
    ("step_for", "return float(np.finfo(dtype).eps) ** (1 / 3)", "return 1e-6",
     "step too small"),
    ("step_for", "** (1 / 3)", "** (1 / 2)", "step too small"),
    ("step_for", "return float(np.finfo(dtype).eps) ** (1 / 3)", "return 0.05",
     "step too large"),
    ("crosses_kink", "np.abs(np.asarray(z)) < h", "np.asarray(z) < h", "kink"),
    ("layer_errors", "            keep = ~crosses_kink(X, h)\n", "            pass\n",
     "kink not excluded"),
    ("diagnosis", "if r > 1e-3:", "if r > 1e-12:", "false alarm"),
    ("diagnosis", "if r > 1e-3:", "if r > 1.5:", "missed a bug"),
]


@pytest.mark.parametrize("cell, old, new, tag", WRITTEN,
                         ids=[f"{c}:{t}:{i}" for i, (c, _, _, t) in enumerate(WRITTEN)])
def test_a_written_mistake_is_named(cell, old, new, tag):
    namespace = student({cell: (old, new)})
    check, name = CHECKS[cell]
    assert tag_of(check, namespace[name], seed=1) == tag


def test_a_diagnosis_copied_from_library_0_fails_on_other_libraries(solution):
    """The hidden tests ask for libraries with other bugs: writing down the answer of
    library(0) does not pass them."""
    copied = solution["diagnosis"](0, 0)

    def diagnosis(variant=0, seed=0):
        return copied

    assert tag_of("check_diagnosis", diagnosis) is None
    assert any(tag_of("check_diagnosis", diagnosis, seed) is not None for seed in range(3))


VARIANTS = [("check_central_difference", gc.CENTRAL, t) for t in gc.CENTRAL.mistakes] + [
    ("check_relative_error", gc.RELATIVE, t) for t in gc.RELATIVE.mistakes] + [
    ("check_crosses_kink", gc.KINK, t) for t in gc.KINK.mistakes] + [
    ("check_layer_errors", gc.LAYER, t) for t in gc.LAYER.mistakes]


@pytest.mark.parametrize("check, exercise, tag", VARIANTS,
                         ids=[f"{c}:{t}" for c, _, t in VARIANTS])
def test_every_variant_of_the_tables_is_named_without_a_number(check, exercise, tag,
                                                               monkeypatch):
    import contextlib

    from course_pkg.checks import feedback

    # the variants are built on the checks' own functions and on gradcheck, which the checks
    # switch off while a student's function runs: here the variant is the student
    monkeypatch.setattr(feedback, "forbid", lambda *functions: contextlib.nullcontext())
    variant = exercise.mistakes[tag]

    def answer(*args):
        value = variant(*args)
        return value if check != "check_crosses_kink" else value.astype(bool)

    for seed in (2, None):  # a variant may agree with the right answer on one library
        try:
            getattr(gc, check)(answer, seed=seed)
        except Feedback as err:
            assert err.tag == tag
            assert not NUMBER.search(str(err)), str(err)
            return
    pytest.fail(f"the variant {tag!r} passed")


# -- the library ---------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", range(0, 60, 3))
def test_the_diagnosis_finds_exactly_the_planted_bugs(variant):
    found = gc.diagnosis(variant, variant % 5)
    assert {(layer, p) for layer, inner in found.items() for p in inner} == gc.planted(variant)
    kinds = set(layers.plan(variant))
    assert kinds == {"missing transpose", "sign", "wrong bias sum"}


def test_every_place_of_every_kind_of_bug_is_drawn():
    drawn = {kind: set() for kind in layers.BUG_KINDS}
    for variant in range(1, 200):
        for kind, place in layers.plan(variant).items():
            drawn[kind].add(place)
    assert drawn == {kind: set(places) for kind, places in layers.BUG_KINDS.items()}


def test_a_keyed_library_is_never_the_one_its_number_gives_without_the_salt():
    """The hidden libraries' places depend on a salt drawn at grading time: recomputing them
    from the library's source and the number, or copying library 0's, is wrong every time."""
    rng = np.random.default_rng(7)
    drawn = {kind: set() for kind in layers.BUG_KINDS}
    for _ in range(150):
        key = gc.hidden_library(rng)
        keyed = layers.plan(key)
        assert keyed not in (layers.plan(key.variant), layers.plan(0))
        assert keyed["sign"] != ("relu", "X")  # the kink's r = 1 stays a false alarm
        assert gc.planted(key) == {(layer, p) for layer, inner in gc.diagnosis(key).items()
                                   for p in inner}
        for kind, place in keyed.items():
            drawn[kind].add(place)
    assert drawn == {kind: set(places) - {("relu", "X")}
                     for kind, places in layers.BUG_KINDS.items()}


def test_a_key_crosses_the_wire_as_a_name_that_leaves_its_number_and_salts_the_library():
    """What the student's kernel receives for a key: the plain number, with the salt
    registered where only library() reads it (no module attribute holds it)."""
    from course_pkg.sandbox import kernel, wire

    key = layers.Key(424_242, 12_345)   # a number no hidden case draws (they are < 10^4)
    sent = wire.encode([key])
    assert sent == [{"__callable__": "course_pkg.layers:_KEYS.v424242_s12345"}]
    received = kernel._arguments(wire.decode(sent))
    assert received == [424_242] and type(received[0]) is int
    for name in layers.PARAMETERS:
        params, X, dY = layers.example(name, 0)
        here, there = layers.library(key)[name], layers.library(received[0])[name]
        for parameter, gradient in here.backward(params, X, dY).items():
            assert np.array_equal(gradient, there.backward(params, X, dY)[parameter])
    assert not any(12_345 == value for value in vars(layers).values() if isinstance(value, int))


def test_the_places_are_withheld_and_switched_off():
    assert "course_pkg.layers:plan" in gc.WITHHELD
    assert layers.plan in gc.DIAGNOSIS.forbidden and layers.plan in gc.LAYER.forbidden

    def reads_the_plan(variant=0, seed=0):
        return {layer: {parameter: 1.0} for layer, parameter in layers.plan(variant).values()}

    assert tag_of("check_diagnosis", reads_the_plan) == "used course_pkg"


@pytest.mark.parametrize("name", sorted(layers.PARAMETERS))
def test_without_bugs_every_layer_passes_its_gradient_check(name):
    from course_pkg.gradcheck import central_differences

    params, X, dY = layers.example(name, seed=4)
    X = np.where(np.abs(X) < 1e-3, 0.5, X)  # no kink within the step
    backward = layers._backward(name, {})(params, X, dY)
    forward = layers._forward(name)
    for parameter in layers.PARAMETERS[name]:
        def C(value, parameter=parameter):
            if parameter == "X":
                return float(np.sum(forward(params, value) * dY))
            return float(np.sum(forward({**params, parameter: value}, X) * dY))

        point = X if parameter == "X" else params[parameter]
        numeric = central_differences(C, point, h=1e-5)
        assert gc.relative_error(backward[parameter], numeric) < 1e-7


def test_at_the_kink_the_central_difference_averages_two_slopes():
    """What the written answer explains: at z = 0 the estimate is half the slope, r = 1."""
    params, X, dY = layers.example("relu", 0)
    assert X[0, 0] == 0.0
    layer = layers.library(0)["relu"]
    analytic = layer.backward(params, X, dY)["X"]
    numeric = gc.central_difference(lambda v: float(np.sum(layer.forward(params, v) * dY)), X)
    assert analytic[0, 0] == 0.0
    assert numeric[0, 0] == pytest.approx(dY[0, 0] / 2, rel=1e-6)
    assert gc.relative_error(analytic[0, 0], numeric[0, 0]) == pytest.approx(1.0)


def test_a_good_step_is_near_the_cube_root_of_epsilon_in_each_precision():
    for dtype in ("float64", "float32"):
        best = float(np.finfo(dtype).eps) ** (1 / 3)
        assert gc.step_error(best, dtype) <= gc.REQUIRED_R[dtype]
        assert gc.step_error(best / 100, dtype) > gc.REQUIRED_R[dtype]
        assert gc.step_error(best * 30, dtype) > gc.REQUIRED_R[dtype]
    assert gc.step_error(1e-6, "float32") > gc.REQUIRED_R["float32"]  # float64's step


def test_bad_input_to_the_library_is_refused_clearly():
    with pytest.raises(ValueError, match="variant must be a non-negative integer"):
        layers.plan(-1)
    with pytest.raises(ValueError, match="variant must be a non-negative integer"):
        layers.library("3")
    with pytest.raises(ValueError, match="a salt must be a non-negative integer"):
        layers.Key(3, -1)
    with pytest.raises(ValueError, match="unknown layer"):
        layers.example("conv")


def test_the_written_answer_is_graded_by_hand_and_kept_apart():
    manual = [c for c in cells() if c["metadata"].get("nbgrader", {}).get("grade")
              and c["cell_type"] == "markdown"]
    assert len(manual) == 1
    meta = manual[0]["metadata"]["nbgrader"]
    assert meta["solution"] and meta["points"] == 2 and "kink" in meta["grade_id"]
    automatic = sum(c["metadata"]["nbgrader"]["points"] for c in cells()
                    if c["metadata"].get("nbgrader", {}).get("grade")
                    and c["cell_type"] == "code")
    assert automatic == 12


def test_the_sandbox_withholds_the_chapters_tools():
    for name in ("course_pkg.gradcheck:relative_error", "course_pkg.gradcheck:central_differences",
                 "course_pkg.gradcheck:gradient_check"):
        assert name in gc.WITHHELD


def test_single_token_mutations_of_the_solution_lose_points():
    import mutation

    killed, total, survivors = mutation.mutation_score(NOTEBOOK)
    assert total >= 60
    assert killed / total >= 0.9, [str(s) for s in survivors]

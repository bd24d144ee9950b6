"""Every label of every explorer is readable at 100% zoom: at least MIN_FONT_PT points, drawn at
72 dots per inch (a point is a pixel), in the live form and in the static frames alike."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
from matplotlib.text import Text

import course_pkg.widgets as widgets


def explorer_factories() -> list[tuple[str, object]]:
    """Every ``*_explorer`` function of the modules of course_pkg.widgets."""
    found = []
    for info in pkgutil.iter_modules(widgets.__path__):
        module = importlib.import_module(f"course_pkg.widgets.{info.name}")
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if name.endswith("_explorer") and function.__module__ == module.__name__:
                found.append((f"{info.name}.{name}", function))
    return found


def test_readable_raises_small_text_only() -> None:
    fig, ax = plt.subplots()
    small = ax.text(0, 0, "tiny", fontsize=5)
    large = ax.set_title("large", fontsize=14)
    widgets.readable(fig)
    assert small.get_fontsize() == widgets.MIN_FONT_PT
    assert large.get_fontsize() == 14
    plt.close(fig)


@pytest.mark.parametrize(("name", "factory"), explorer_factories(),
                         ids=[name for name, _ in explorer_factories()])
def test_every_label_of_a_live_explorer_is_at_least_the_minimum(name: str,
                                                                factory: object) -> None:
    pytest.importorskip("ipywidgets")
    ex = factory(static=False)
    sizes = [t.get_fontsize() for t in ex.figure.findobj(Text) if t.get_text()]
    assert sizes, f"{name}: no text in the figure"
    assert min(sizes) >= widgets.MIN_FONT_PT, f"{name}: a label of {min(sizes)} pt"
    assert widgets.FRAME_DPI == 72  # so that a point is a pixel in the static frames
    plt.close("all")

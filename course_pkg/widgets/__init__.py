"""Interactive figures for the chapters: live in a kernel, still interactive on the static site.

:func:`explorer` takes a function that draws a matplotlib figure from a few named values and
the values each control may take. In a running notebook it returns a live :class:`Explorer`
(ipywidgets sliders that redraw the figure). When the book is built (the Makefile sets
``COURSE_BOOK_BUILD=1``) it returns a :class:`StaticExplorer` instead: every combination of
values is drawn once at build time, and a few lines of inline JavaScript swap the pictures as
the reader moves the sliders, so the published page responds with no kernel and no network.

ipywidgets is imported only when a live explorer is made.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

MAX_FRAMES = 96
"""The most pictures a static explorer precomputes (the product of the control grids)."""


def _format(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    return str(value)


def _check_controls(controls: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    if not controls:
        raise ValueError("an explorer needs at least one control: {name: [values, ...]}")
    checked = {}
    for name, values in controls.items():
        values = list(values)
        if not values:
            raise ValueError(f"control {name!r} has no values")
        checked[name] = values
    return checked


def figure_data(fig: Any) -> list[np.ndarray]:
    """The data drawn in a matplotlib figure: every line's points, image and collection offset.

    Tests compare it before and after a control changes.
    """
    data = []
    for ax in fig.axes:
        data.extend(np.asarray(line.get_xydata(), dtype=float) for line in ax.lines)
        data.extend(np.asarray(im.get_array(), dtype=float) for im in ax.images)
        for coll in ax.collections:
            data.append(np.asarray(coll.get_offsets(), dtype=float))
            if hasattr(coll, "U"):  # quiver arrows
                data.append(np.asarray([coll.U, coll.V], dtype=float))
    return data


def data_changed(before: list[np.ndarray], after: list[np.ndarray]) -> bool:
    """Whether two :func:`figure_data` snapshots differ (in count, shape or values)."""
    return len(before) != len(after) or any(
        a.shape != b.shape or not np.allclose(a, b) for a, b in zip(before, after, strict=False)
    )


class Explorer:
    """A live figure with one slider per control (ipywidgets); display it in a notebook.

    Attributes
    ----------
    controls
        name -> the ipywidgets slider; set ``.value`` to move it from code.
    figure
        The matplotlib figure drawn for the current values.
    widget
        The ipywidgets box shown in the notebook.
    """

    def __init__(self, draw: Callable[..., Any], controls: Mapping[str, Sequence[Any]],
                 initial: Mapping[str, Any] | None = None) -> None:
        import ipywidgets as w
        import matplotlib.pyplot as plt

        self._draw, self._plt = draw, plt
        grids = _check_controls(controls)
        initial = dict(initial or {})
        self.controls = {
            name: w.SelectionSlider(
                options=[(_format(v), v) for v in values],
                value=initial.get(name, values[len(values) // 2]),
                description=name, continuous_update=False,
                layout=w.Layout(width="420px"), style={"description_width": "initial"},
            )
            for name, values in grids.items()
        }
        self.output = w.Output()
        self.figure = None
        for slider in self.controls.values():
            slider.observe(lambda _change: self.redraw(), names="value")
        self.widget = w.VBox([*self.controls.values(), self.output])
        self.redraw()

    @property
    def values(self) -> dict[str, Any]:
        """The current value of each control."""
        return {name: slider.value for name, slider in self.controls.items()}

    def redraw(self) -> None:
        """Draw the figure for the current values and show it."""
        from IPython.display import display

        if self.figure is not None:
            self._plt.close(self.figure)
        self.figure = self._draw(**self.values)
        self.output.clear_output(wait=True)
        with self.output:
            display(self.figure)
        self._plt.close(self.figure)  # shown once, in the output, not again by the backend

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


class StaticExplorer:
    """Precomputed pictures with HTML range sliders: interactive on a page with no kernel.

    Attributes
    ----------
    frames
        The PNG data URI drawn for each combination of control indices.
    """

    def __init__(self, draw: Callable[..., Any], controls: Mapping[str, Sequence[Any]],
                 initial: Mapping[str, Any] | None = None, dpi: int = 72) -> None:
        import matplotlib.pyplot as plt

        self.grids = _check_controls(controls)
        n_frames = int(np.prod([len(v) for v in self.grids.values()]))
        if n_frames > MAX_FRAMES:
            raise ValueError(
                f"{n_frames} combinations of control values is too many to precompute; "
                f"keep the product of the grid sizes at most {MAX_FRAMES}"
            )
        initial = dict(initial or {})
        self.start = [
            values.index(initial[name]) if name in initial else len(values) // 2
            for name, values in self.grids.items()
        ]
        self.frames: dict[str, str] = {}
        names = list(self.grids)
        for index in itertools.product(*(range(len(v)) for v in self.grids.values())):
            values = {name: self.grids[name][i] for name, i in zip(names, index, strict=True)}
            fig = draw(**values)
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
            plt.close(fig)
            png = base64.b64encode(buffer.getvalue()).decode("ascii")
            self.frames[",".join(map(str, index))] = "data:image/png;base64," + png

    def _repr_html_(self) -> str:
        uid = "explorer-" + uuid.uuid4().hex[:10]
        rows = []
        for k, (name, values) in enumerate(self.grids.items()):
            labels = json.dumps([_format(v) for v in values])
            rows.append(
                f'<label style="display:block;font-family:sans-serif;font-size:0.9em">'
                f'<span style="display:inline-block;min-width:7em">{html.escape(name)}</span> '
                f'<input type="range" min="0" max="{len(values) - 1}" step="1" '
                f'value="{self.start[k]}" data-labels=\'{html.escape(labels)}\' '
                f'aria-label="{html.escape(name)}" style="width:320px;vertical-align:middle"> '
                f"<output>{html.escape(_format(values[self.start[k]]))}</output></label>"
            )
        key = ",".join(map(str, self.start))
        script = (
            "(function(){"
            f"var root=document.getElementById('{uid}');"
            f"var frames={json.dumps(self.frames)};"
            "var inputs=root.querySelectorAll('input[type=range]');"
            "var img=root.querySelector('img');"
            "function show(){var key=[];inputs.forEach(function(el){key.push(el.value);"
            "el.nextElementSibling.textContent=JSON.parse(el.dataset.labels)[el.value];});"
            "img.src=frames[key.join(',')];img.dataset.key=key.join(',');}"
            "inputs.forEach(function(el){el.addEventListener('input',show);});"
            "})();"
        )
        return (
            f'<div id="{uid}" class="course-explorer">{"".join(rows)}'
            f'<img src="{self.frames[key]}" data-key="{key}" alt="interactive figure" '
            f'style="max-width:100%"><script>{script}</script></div>'
        )


def explorer(draw: Callable[..., Any], controls: Mapping[str, Sequence[Any]],
             initial: Mapping[str, Any] | None = None,
             static: bool | None = None) -> Explorer | StaticExplorer:
    """An interactive figure: ``draw(**values)`` returns a matplotlib figure.

    Parameters
    ----------
    draw
        Called with one keyword argument per control; returns a new matplotlib Figure.
    controls
        name -> the values the control can take (a short grid: the static site precomputes
        every combination).
    initial
        name -> the starting value (default: the middle of each grid).
    static
        Force the static (True) or live (False) form; by default static while the book is
        being built (``COURSE_BOOK_BUILD=1``) and live otherwise.
    """
    if static is None:
        static = os.environ.get("COURSE_BOOK_BUILD") == "1"
    cls = StaticExplorer if static else Explorer
    return cls(draw, controls, initial)

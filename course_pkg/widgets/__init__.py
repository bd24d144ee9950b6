"""Interactive figures for the chapters: live in a kernel, still interactive on the static site.

:func:`explorer` takes a function that draws a matplotlib figure from a few named values and
the values each control may take. In a running notebook it returns a live :class:`Explorer`
(ipywidgets sliders that redraw the figure). When the book is built (the Makefile sets
``COURSE_BOOK_BUILD=1``) it returns a :class:`StaticExplorer` instead: every combination of
values is drawn once at build time, and a few lines of inline JavaScript swap the pictures as
the reader moves the sliders, so the published page responds with no kernel and no network.

Both forms make every label readable at 100% zoom (``readable``: at least ``MIN_FONT_PT``
points, drawn at 72 dots per inch, so as many pixels). The live form shows its figure as an
ordinary output of the cell, updated in place, so that a saved notebook shows the figure again
when it is reopened without a kernel. The static form's picture frames are 256-colour PNGs.

**Reopening in a default JupyterLab.** JupyterLab shows "Error displaying widget: model not
found" for a saved widget output whose model it cannot find, and by default it saves no widget
state. So the live form's widgets have fixed model ids (``explorer_key``: the same draw
function and controls give the same ids in every kernel), and the static form, made while the
book is built, records the live form's widget state under those ids in its output's metadata
(``LIVE_STATE``). The notebook a student downloads carries that state in its own metadata
(``book/_ext/student_notebooks.py``): JupyterLab restores the models from it whenever the
notebook is opened, so the sliders' output always finds its model, before the cell is run and
after a run, a save and a kernel shutdown; running the cell replaces them with live ones.

ipywidgets is imported only when a live explorer is made.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import io
import itertools
import json
import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

MAX_FRAMES = 150
"""The most pictures a static explorer precomputes (the product of the control grids)."""

MIN_FONT_PT = 10
"""The smallest font size (points) of any text in an explorer's figure; frames are drawn at
72 dots per inch, so a point is a pixel at 100% zoom."""

FRAME_DPI = 72
"""Dots per inch of the static explorers' frames."""

LIVE_STATE = "course_pkg/live-explorer"
"""The output-metadata key under which a static explorer records its live form: the root
widget's model id, the widget state of every model, and the first figure as a PNG."""

_LIVE: dict[str, Explorer] = {}
"""The live explorer shown for each key in this kernel (a rerun closes the previous one)."""


def explorer_key(draw: Callable[..., Any], grids: Mapping[str, Sequence[Any]]) -> str:
    """A name of the explorer that is the same in every kernel: its draw function's module
    and name, and its controls with their number of values."""
    text = (f"{getattr(draw, '__module__', '')}.{getattr(draw, '__qualname__', repr(draw))}|"
            + "|".join(f"{name}:{len(values)}" for name, values in grids.items()))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


@contextlib.contextmanager
def _no_frontend() -> Iterator[None]:
    """Widgets made inside talk to no frontend (a build records their state only)."""
    import comm

    saved = comm.create_comm
    comm.create_comm = comm.DummyComm
    try:
        yield
    finally:
        comm.create_comm = saved


STATIC_HINT = ("These sliders move with the course website's script. In a notebook, run the "
               "cell: the live version redraws the figure.")
"""Shown under a static explorer where its script does not run (an untrusted notebook)."""


def readable(fig: Any, min_size: float = MIN_FONT_PT) -> Any:
    """Raise every text of a matplotlib figure (labels, ticks, titles, legends, annotations)
    to at least ``min_size`` points; returns the figure."""
    from matplotlib.text import Text

    for text in fig.findobj(Text):
        if text.get_text() and text.get_fontsize() < min_size:
            text.set_fontsize(min_size)
    return fig


def frame_box(fig: Any, pad: float = 0.12) -> Any:
    """The tight bounding box (inches) of a figure's drawing, with ``pad`` inches around it.

    A static explorer computes it once, on its first frame, and crops every frame to it: one
    drawing per frame instead of the two of ``bbox_inches="tight"``, and frames of one size.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    box = fig.get_tightbbox(canvas.get_renderer())
    return box.padded(pad)


def png_frame(fig: Any, dpi: int = FRAME_DPI, box: Any = "tight") -> str:
    """The figure as a data URI of a 256-colour PNG (a quarter of a true-colour PNG's size)."""
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches=box)
    image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    out = io.BytesIO()
    image.quantize(256, method=Image.Quantize.FASTOCTREE).save(out, format="png")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def _format(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    return str(value)


def _labels(name: str, values: Sequence[Any],
            labels: Mapping[str, Sequence[str]] | None) -> list[str]:
    """What a control shows for each of its values: ``labels[name]`` if given, else the value."""
    if labels and name in labels:
        shown = [str(label) for label in labels[name]]
        if len(shown) != len(values):
            raise ValueError(f"control {name!r} has {len(values)} values but "
                             f"{len(shown)} labels")
        return shown
    return [_format(v) for v in values]


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
        The ipywidgets box of the sliders; the figure is shown below it as an image output.
    """

    def __init__(self, draw: Callable[..., Any], controls: Mapping[str, Sequence[Any]],
                 initial: Mapping[str, Any] | None = None,
                 labels: Mapping[str, Sequence[str]] | None = None) -> None:
        import ipywidgets as w
        import matplotlib.pyplot as plt

        self._draw, self._plt = draw, plt
        grids = _check_controls(controls)
        self.key = explorer_key(draw, grids)
        previous = _LIVE.pop(self.key, None)
        if previous is not None:  # a rerun: its models' ids are about to be reused
            previous.close()
        ids = (f"course-explorer-{self.key}-{i}" for i in itertools.count())
        initial = dict(initial or {})
        self.controls = {
            name: w.SelectionSlider(
                options=list(zip(_labels(name, values, labels), values, strict=True)),
                value=initial.get(name, values[len(values) // 2]),
                description=name, continuous_update=False,
                layout=w.Layout(width="420px", model_id=next(ids)),
                style=w.SliderStyle(description_width="initial", model_id=next(ids)),
                model_id=next(ids),
            )
            for name, values in grids.items()
        }
        self.figure = None
        self._handle = None
        for slider in self.controls.values():
            slider.observe(lambda _change: self.redraw(), names="value")
        self.widget = w.VBox(list(self.controls.values()), layout=w.Layout(model_id=next(ids)),
                             model_id=next(ids))
        _LIVE[self.key] = self
        self.redraw()

    def models(self) -> list[Any]:
        """Every widget model of the explorer: the box, the sliders, their layouts and styles."""
        found = [self.widget, self.widget.layout]
        for slider in self.controls.values():
            found += [slider, slider.layout, slider.style]
        return found

    def close(self) -> None:
        """Close every model (their ids are free again) and the figure."""
        for model in self.models():
            model.close()
        if self.figure is not None:
            self._plt.close(self.figure)
        if _LIVE.get(self.key) is self:
            del _LIVE[self.key]

    def state(self) -> dict[str, Any]:
        """What a saved notebook needs to show this explorer's sliders without a kernel: the
        root model's id and the widget state of every model (JupyterLab's format)."""
        import ipywidgets as w

        return {"model_id": self.widget.model_id,
                "state": w.Widget.get_manager_state(widgets=self.models())["state"]}

    @property
    def values(self) -> dict[str, Any]:
        """The current value of each control."""
        return {name: slider.value for name, slider in self.controls.items()}

    def redraw(self) -> None:
        """Draw the figure for the current values and show it in place of the previous one."""
        if self.figure is not None:
            self._plt.close(self.figure)
        self.figure = readable(self._draw(**self.values))
        self._plt.close(self.figure)  # shown by the display handle, not again by the backend
        if self._handle is not None:
            self._handle.update(self.image())

    def image(self) -> Any:
        """The current figure as an IPython PNG image (what the cell's output shows)."""
        from IPython.display import Image

        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=FRAME_DPI, bbox_inches="tight")
        return Image(data=buffer.getvalue(), format="png")

    def _ipython_display_(self) -> None:
        """The sliders (a widget) and the figure (a plain image output, kept in a saved
        notebook), updated in place as the sliders move."""
        from IPython.display import display

        display(self.widget)
        self._handle = display(self.image(), display_id=True)


class StaticExplorer:
    """Precomputed pictures with HTML range sliders: interactive on a page with no kernel.

    Attributes
    ----------
    frames
        The PNG data URI drawn for each combination of control indices.
    """

    def __init__(self, draw: Callable[..., Any], controls: Mapping[str, Sequence[Any]],
                 initial: Mapping[str, Any] | None = None, dpi: int = FRAME_DPI,
                 labels: Mapping[str, Sequence[str]] | None = None) -> None:
        import matplotlib.pyplot as plt

        self.grids = _check_controls(controls)
        self.labels = {name: _labels(name, values, labels) for name, values in self.grids.items()}
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
        self.live = record_live_state(draw, controls, initial, labels)
        self.frames: dict[str, str] = {}
        names = list(self.grids)
        box = None
        for index in itertools.product(*(range(len(v)) for v in self.grids.values())):
            values = {name: self.grids[name][i] for name, i in zip(names, index, strict=True)}
            fig = readable(draw(**values))
            if box is None:
                box = frame_box(fig)
            self.frames[",".join(map(str, index))] = png_frame(fig, dpi, box)
            plt.close(fig)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None
                          ) -> tuple[dict[str, str], dict[str, Any]]:
        """The page's HTML, with the live form's state in the output's metadata."""
        metadata = {LIVE_STATE: self.live} if self.live else {}
        return {"text/html": self._repr_html_()}, metadata

    def _repr_html_(self) -> str:
        uid = "explorer-" + uuid.uuid4().hex[:10]
        rows = []
        for k, (name, values) in enumerate(self.grids.items()):
            labels = json.dumps(self.labels[name])
            rows.append(
                f'<label style="display:block;font-family:sans-serif;font-size:0.9em">'
                f'<span style="display:inline-block;min-width:7em">{html.escape(name)}</span> '
                f'<input type="range" min="0" max="{len(values) - 1}" step="1" '
                f'value="{self.start[k]}" data-labels=\'{html.escape(labels)}\' '
                f'aria-label="{html.escape(name)}" style="width:320px;vertical-align:middle"> '
                f"<output>{html.escape(self.labels[name][self.start[k]])}</output></label>"
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
            "var hint=root.querySelector('.course-explorer-hint');if(hint)hint.remove();"
            "})();"
        )
        return (
            f'<div id="{uid}" class="course-explorer">{"".join(rows)}'
            f'<img src="{self.frames[key]}" data-key="{key}" alt="interactive figure" '
            f'style="max-width:100%">'
            f'<p class="course-explorer-hint" style="font-family:sans-serif;font-size:0.85em;'
            f'font-style:italic">{html.escape(STATIC_HINT)}</p><script>{script}</script></div>'
        )


def record_live_state(draw: Callable[..., Any], controls: Mapping[str, Sequence[Any]],
                      initial: Mapping[str, Any] | None = None,
                      labels: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """The live form's state (:meth:`Explorer.state`) and its first figure (a base64 PNG),
    made without a frontend; {} where ipywidgets is not installed."""
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return {}
    with _no_frontend():
        live = Explorer(draw, controls, initial, labels=labels)
        try:
            recorded = live.state()
            recorded["figure"] = base64.b64encode(live.image().data).decode("ascii")
        finally:
            live.close()
    return recorded


def explorer(draw: Callable[..., Any], controls: Mapping[str, Sequence[Any]],
             initial: Mapping[str, Any] | None = None,
             static: bool | None = None,
             labels: Mapping[str, Sequence[str]] | None = None) -> Explorer | StaticExplorer:
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
    labels
        name -> what the control shows for each of its values (default: the values), e.g. the
        examples of a data set by name rather than by index.
    """
    if static is None:
        static = os.environ.get("COURSE_BOOK_BUILD") == "1"
    cls = StaticExplorer if static else Explorer
    return cls(draw, controls, initial, labels=labels)

"""Explorers survive reopening in a default JupyterLab (course_pkg.widgets, issue 16).

The live explorer's models have ids fixed by its draw function and controls, the static form
records the live form's widget state under those ids, and the chapter download carries that
state in its metadata (book/_ext/student_notebooks.py). tests/test_jupyterlab.py checks the
result in JupyterLab; these check the pieces.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import pytest  # noqa: E402

from course_pkg import widgets  # noqa: E402

pytest.importorskip("ipywidgets")
ROOT = Path(__file__).resolve().parents[1]
CONTROLS = {"a": [0.5, 1.0, 2.0], "b": [1, 2]}


def draw(a: float, b: int):
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [0, a * b])
    return fig


def test_a_live_explorer_has_the_same_model_ids_in_every_kernel():
    with widgets._no_frontend():
        first = widgets.Explorer(draw, CONTROLS)
        ids = [m.model_id for m in first.models()]
        second = widgets.Explorer(draw, CONTROLS)  # a rerun of the cell
        assert [m.model_id for m in second.models()] == ids
        assert first.widget.comm is None  # the rerun closed the previous models first
        other = widgets.Explorer(draw, {"a": [1.0, 2.0], "b": [1, 2, 3]})
        assert not set(ids) & {m.model_id for m in other.models()}
        second.close()
        other.close()
    assert len(set(ids)) == len(ids) == 2 + 3 * len(CONTROLS)
    assert all(i.startswith("course-explorer-") for i in ids)


def test_the_static_form_records_the_live_forms_state():
    static = widgets.StaticExplorer(draw, CONTROLS)
    with widgets._no_frontend():
        live = widgets.Explorer(draw, CONTROLS)
        expected = live.state()
        live.close()
    assert static.live["model_id"] == expected["model_id"]
    assert set(static.live["state"]) == set(expected["state"])
    root = static.live["state"][static.live["model_id"]]
    assert root["model_name"] == "VBoxModel"
    assert static.live["figure"].startswith("iVBOR")  # a PNG, base64
    data, metadata = static._repr_mimebundle_()
    assert "text/html" in data and metadata[widgets.LIVE_STATE] is static.live


def test_the_download_carries_the_state_and_shows_sliders_and_figure():
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    import student_notebooks as sn

    static = widgets.StaticExplorer(draw, CONTROLS)
    data, metadata = static._repr_mimebundle_()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("explorer(draw, ...)")])
    nb.cells[0].outputs = [nbformat.v4.new_output("display_data", data=data,
                                                  metadata=metadata)]
    out = sn.student_notebook(nb)
    outputs = out.cells[0].outputs
    assert outputs[0].data[sn.WIDGET_VIEW]["model_id"] == static.live["model_id"]
    assert outputs[1].data["image/png"] == static.live["figure"]
    state = out.metadata["widgets"][sn.WIDGET_STATE]["state"]
    assert set(state) == set(static.live["state"])
    assert "course_pkg/live-explorer" not in nbformat.writes(out)  # no build-only metadata

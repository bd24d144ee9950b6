"""The trusted half of autograding: nbgrader's execute step, split across the sandbox wall.

:class:`TrustedExecute` replaces nbgrader's ``Execute`` preprocessor in the ``Autograde``
converter (the rest of nbgrader's chain is unchanged: it restores the instructor's cells before,
and scores the outputs after). It walks the notebook:

* the student's cells, and every other cell that is not a test, run in the submission's
  :class:`~course_pkg.grading.sandbox.SandboxedKernel`; their outputs come back as hostile data
  and are cleaned (:mod:`course_pkg.grading.untrusted`);
* the instructor's setup cells (locked, not tests) come from the gradebook: all of them run
  first in the grader's own namespace, whatever the submission did to them (deleted, moved,
  renamed, duplicated); in the kernel they run, without their imports of the checks, where
  the notebook has them, and at the start when the notebook lost them. A lost or moved
  locked cell is noted in the student's report;
* the sandbox's copy of the notebook has blanks where the test cells stand
  (:func:`~course_pkg.grading.withheld.sandbox_copy`): no test is ever inside it;
* the test cells run here, in the grader's process, from the gradebook's copy of their source
  (hidden tests included). The only names a test takes from the student's kernel are the
  assignment's answer names (:func:`~course_pkg.grading.withheld.answer_names`): a function
  becomes a :class:`RemoteFunction`, which calls the student's function in the sandbox on the
  arguments the check chose and decodes the reply (plain data only, and never a string where
  a number is due); a value is fetched as plain data. Every other name is the grader's. The
  test's outputs are the grader's own: nothing the student's code prints, patches or
  registers can change them;
* each failed test's mistake tag comes from the exception the grader's check raised (a tag of
  :data:`course_pkg.checks.feedback.MISTAKES`), recorded as a ``verdict`` event, never read
  from text that the student's code printed or raised;
* outputs are capped per cell and per notebook (:data:`NOTEBOOK_OUTPUT_CELLS` cells' worth of
  text, :data:`NOTEBOOK_IMAGE_CHARS` of images), with a note when cut.

A kernel that dies or is stopped ends the sandbox; the cells after it are marked as not run,
with the reason, and each test after it fails saying so.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
import warnings
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import nbformat
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors.base import NbGraderPreprocessor
from traitlets import Bool, Dict, Unicode

from course_pkg.checks.guard import ReferenceUsedError
from course_pkg.grading.sandbox import (
    KernelStopped,
    Limits,
    SandboxedKernel,
    SandboxFault,
)
from course_pkg.grading.untrusted import clean_markdown, clean_outputs, one_line, valid_text
from course_pkg.grading.withheld import (
    allowed_packages,
    answer_names,
    is_setup,
    is_test,
    sandbox_copy,
    sandbox_source,
)
from course_pkg.sandbox import wire

MAX_PRINTED = 2_000
NOTEBOOK_OUTPUT_CELLS = 10
"""A notebook keeps at most this many cells' worth (``Limits.max_output_chars`` each) of text
output in all; the rest is dropped with a note."""
NOTEBOOK_IMAGE_CHARS = 8 * 2**20
"""A notebook keeps at most this much of PNG images (base64 characters, a hundred plots or
so); a later image is replaced by a note."""
EVENTS: ContextVar[list[dict[str, Any]]] = ContextVar("course_grading_events")
"""The events of the grading under way in this thread; :func:`course_pkg.grading.task.grade`
sets a fresh list for each grading."""


class StudentError(Exception):
    """The student's function raised ``ename: evalue`` inside the sandbox."""

    def __init__(self, ename: str, evalue: str) -> None:
        super().__init__(f"{ename}: {evalue}" if evalue else ename)
        self.ename, self.evalue = ename, evalue


class RemoteFunction:
    """A student's function, called in the sandbox with arguments chosen here.

    ``clock`` counts the CPU seconds of the sandbox's processes, as the operating system
    reports them (the checks time a call with it, so that a busy machine does not count).
    """

    clock_name = " of CPU time in the grading sandbox"
    in_sandbox = True
    """It runs in the sandbox, on copies of its arguments, out of reach of this process (so
    :func:`course_pkg.checks.feedback.call` neither copies them nor switches references off)."""

    def __init__(self, kernel: SandboxedKernel, name: str, printed: list[str],
                 answers: frozenset[str] = frozenset()) -> None:
        self.kernel, self.__name__, self.printed = kernel, name, printed
        self.answers = answers
        self.__qualname__ = name
        self.clock = kernel.cpu_seconds
        if "wall-clock" in kernel.accounting:  # no control group: the rule of one core
            self.clock_name = " of wall-clock time in the grading sandbox (on one core)"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        timeout = self.kernel.limits.cell_timeout
        reply = self.kernel.request({"op": "call", "name": self.__name__,
                                     "args": wire.encode(list(args), raw=True),
                                     "kwargs": wire.encode(kwargs, raw=True),
                                     "timeout": timeout},
                                    timeout + 5)
        printed = reply.get("printed")
        if isinstance(printed, str) and printed and sum(map(len, self.printed)) < MAX_PRINTED:
            self.printed.append(printed[:MAX_PRINTED])
        if reply.get("ok") is True:
            try:
                return numbers_only(wire.decode(reply.get("value")), "it returned")
            except wire.WireError as err:
                raise StudentError("TypeError", f"it returned {err}") from None
        ename, evalue = one_line(reply.get("ename"), 80), one_line(reply.get("evalue"), 300)
        if ename == "NotImplementedError":
            raise NotImplementedError(evalue)
        if ename == "WithheldError":
            raise ReferenceUsedError(evalue.split(" is withheld")[0])
        raise StudentError(ename, evalue)

    def helper(self, name: str) -> RemoteFunction | None:
        """The student's function ``name`` in the same kernel, or None: only one of the
        assignment's answer names, and only where the kernel holds a function by that name
        (the checks call it to point a failing check at the helper that is off first)."""
        if name not in self.answers:
            return None
        reply = self.kernel.request({"op": "lookup", "name": name}, 10)
        if reply.get("kind") != "callable":
            return None
        return RemoteFunction(self.kernel, name, self.printed, self.answers)

    def __repr__(self) -> str:
        return f"<the student's function {self.__name__}>"


def failure_tag(err: BaseException) -> str:
    """The mistake tag of a failed test: the tag of the grader's own check (a key of its
    table, :data:`course_pkg.checks.feedback.MISTAKES`), or one named by the exception's type
    alone; never text that the student's code wrote."""
    from course_pkg.checks.feedback import MISTAKES, Feedback

    if isinstance(err, Feedback) and getattr(err, "tag", None) in MISTAKES:
        return str(err.tag)
    if isinstance(err, NotImplementedError):
        return "not implemented"
    if isinstance(err, ReferenceUsedError):
        return "used course_pkg"
    if isinstance(err, (StudentError, KernelStopped, NameError, TypeError)):
        return "error"
    return "unknown"


def numbers_only(value: Any, what: str) -> Any:
    """``value`` if it holds no string anywhere (numbers, arrays, and containers of them);
    raises :class:`StudentError` otherwise: a string that spells a number is not a number."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, (str, bytes, wire.CallableName)):
            raise StudentError("TypeError", f"{what} a string where a number or an array "
                               "is expected")
        if isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return value


def free_names(source: str) -> list[str]:
    """Names that ``source`` reads but neither binds nor finds among the builtins."""
    tree = ast.parse(source)
    loaded, bound = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                loaded.append(node.id)
            else:
                bound.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return sorted({n for n in loaded if n not in bound and not hasattr(builtins, n)})


def error_output(ename: str, evalue: str) -> NotebookNode:
    """An nbformat error output, as a failing cell has."""
    return nbformat.from_dict({"output_type": "error", "ename": ename, "evalue": evalue,
                               "traceback": [f"{ename}: {evalue}"]})


def stream(text: str) -> NotebookNode:
    return nbformat.from_dict({"output_type": "stream", "name": "stdout", "text": text})


class TrustedExecute(NbGraderPreprocessor):
    """nbgrader's execute step with the test cells run outside the sandbox (module doc)."""

    package = Unicode("", help="Folder of the withheld course_pkg bound into the sandbox"
                      ).tag(config=True)
    limits = Dict({}, help="Limits of the submission (course_pkg.grading.sandbox.Limits)"
                  ).tag(config=True)
    spec = Dict({}, help="The assignment's cells from the gradebook, per notebook"
                ).tag(config=True)
    sandboxed = Bool(True, help="False: run the kernel without a sandbox").tag(config=True)
    workdir = Unicode("", help="Scratch folder of an unsandboxed kernel").tag(config=True)

    @property
    def events(self) -> list[dict[str, Any]]:
        """What happened to the notebooks of the grading under way (:data:`EVENTS`: one list
        per grading, never shared between two gradings or two threads)."""
        return EVENTS.get()

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]
                   ) -> tuple[NotebookNode, dict[str, Any]]:
        name = resources["nbgrader"]["notebook"]
        notebook_spec = self.spec.get(name, {})
        cells = notebook_spec.get("cells", {})
        order = [g for g in notebook_spec.get("order", list(cells)) if g in cells]
        limits = Limits(**self.limits)
        self.namespace: dict[str, Any] = {"__name__": "__course_test__"}
        self.answers = answer_names(cells)
        self.notebook, self.stopped_at = name, None
        self.text_left = NOTEBOOK_OUTPUT_CELLS * limits.max_output_chars
        self.image_left = NOTEBOOK_IMAGE_CHARS
        for cell in nb.cells:  # a lone surrogate in a cell would stop every later writer
            cell.source = valid_text(cell.source)
        setup = [g for g in order if is_setup(cells[g])]
        for grade_id in setup:  # the grader's namespace: the release's cells, whatever happened
            self._setup(cells[grade_id]["source"], grade_id)
        lost = self._note_locked(nb, cells, order)
        allowed = allowed_packages(cells[g]["source"] for g in setup)
        files = {f"{name}.ipynb": nbformat.writes(sandbox_copy(nb, cells)).encode()}
        try:
            kernel: SandboxedKernel | None = SandboxedKernel(
                Path(self.package), files, limits, sandboxed=self.sandboxed,
                workdir=Path(self.workdir) / name if self.workdir else None,
                allowed=tuple(sorted(allowed)))
        except SandboxFault as err:  # before any of the student's code ran: the grader's
            self.events.append({"event": "grader fault", "what": str(err)})
            raise
        except KernelStopped as err:
            kernel = None
            self._stop(0, str(err))
        try:
            for grade_id in lost:  # the student's answers may need what they import
                self._in_kernel(sandbox_source(cells[grade_id]["source"]), kernel, -1, limits)
            for index, cell in enumerate(nb.cells):
                self._run(cell, index, cells, kernel, limits)
        finally:
            if kernel is not None:
                kernel.close()
        return nb, resources

    def _run(self, cell: NotebookNode, index: int, cells: dict[str, Any],
             kernel: SandboxedKernel | None, limits: Limits) -> None:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        info = cells.get(grade_id) if isinstance(grade_id, str) else None
        if cell.cell_type in ("markdown", "raw") and not (info and info["locked"]):
            cell.source = clean_markdown(cell.source)
            cell.pop("attachments", None)
            for key in ("format", "raw_mimetype"):  # a raw cell would reach the page as HTML
                cell.metadata.pop(key, None)
        if cell.cell_type != "code":
            return
        cell.execution_count = index + 1
        if info and is_test(info):
            cell.outputs = self._test(info["source"], grade_id, kernel)
            return
        source = cell.source
        if info and is_setup(info):  # already run in the grader, before the first cell
            source = sandbox_source(info["source"])
        cell.outputs = self._in_kernel(source, kernel, index, limits)

    def _note_locked(self, nb: NotebookNode, cells: dict[str, Any], order: list[str]
                     ) -> list[str]:
        """Note each locked cell that the notebook lost or moved; return the lost setup cells
        (in the release's order)."""
        present: list[str] = []
        for cell in nb.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if (isinstance(grade_id, str) and grade_id in cells and cells[grade_id]["locked"]
                    and grade_id not in present):
                present.append(grade_id)
        lost = [g for g in order if is_setup(cells[g]) and g not in present]
        for grade_id in lost:
            self.events.append({"event": "note", "what": (
                f"{self.notebook}: the locked cell {grade_id} was missing (deleted or renamed): "
                "the released cell ran instead, first")})
        expected = [g for g in order if g in present]
        moved = [g for g, want in zip(present, expected, strict=True) if g != want]
        if moved:
            self.events.append({"event": "note", "what": (
                f"{self.notebook}: locked cells were moved ({', '.join(moved)}): the tests ran "
                "with the released setup, in the released order")})
        return lost

    def _setup(self, source: str, grade_id: str) -> None:
        try:
            exec(compile(source, f"<instructor cell {grade_id}>", "exec"), self.namespace)
        except Exception as err:  # noqa: BLE001 - the instructor's own cell is broken
            raise RuntimeError(f"the instructor cell {grade_id} fails in the grader: "
                               f"{type(err).__name__}: {err}") from err

    def _in_kernel(self, source: str, kernel: SandboxedKernel | None, index: int,
                   limits: Limits) -> list[NotebookNode]:
        if kernel is None or kernel.stopped:
            return [error_output("NotRun", self._not_run())]
        try:
            reply = kernel.execute(source)
        except KernelStopped as err:
            self._stop(index + 1, str(err))
            return [error_output("KernelStopped", f"{err}: the sandbox was stopped here")]
        if self.text_left <= 0:
            return [stream(f"[output not kept: the notebook's output passed "
                           f"{NOTEBOOK_OUTPUT_CELLS * limits.max_output_chars} characters]\n")]
        budget = min(limits.max_output_chars, self.text_left)
        outputs, cut = clean_outputs(reply.get("outputs"), budget)
        where = f"cell {index + 1}" if index >= 0 else "a restored locked cell"
        if cut and budget == limits.max_output_chars:
            self.events.append({"event": "capped", "what": f"{self.notebook}: {where} "
                                f"printed more than {limits.max_output_chars} characters"})
        self._charge(outputs, limits)
        return outputs

    def _charge(self, outputs: list[NotebookNode], limits: Limits) -> None:
        """Count ``outputs`` against the notebook's caps; drop images past the image cap."""
        before = self.text_left > 0 and self.image_left > 0
        for output in outputs:
            data = output.get("data", {})
            texts = [output.get("text", ""), data.get("text/plain", ""),
                     output.get("evalue", ""), *output.get("traceback", [])]
            self.text_left -= sum(len(t) for t in texts if isinstance(t, str))
            png = data.get("image/png")
            if isinstance(png, str):
                if len(png) > self.image_left:
                    data.pop("image/png")
                    data["text/plain"] = "[image not kept: the notebook's images are over " \
                                         "their cap]"
                    self.image_left = 0
                else:
                    self.image_left -= len(png)
        if before and (self.text_left <= 0 or self.image_left <= 0):
            self.events.append({"event": "capped", "what": (
                f"{self.notebook}: the notebook's output passed its cap of "
                f"{NOTEBOOK_OUTPUT_CELLS * limits.max_output_chars} characters of text (or "
                f"{NOTEBOOK_IMAGE_CHARS // 2**20} MiB of images): later output is not kept")})

    def _test(self, source: str, grade_id: str, kernel: SandboxedKernel | None
              ) -> list[NotebookNode]:
        if kernel is None or kernel.stopped:
            self.events.append({"event": "not run", "cell": grade_id, "why": self._not_run()})
            failure = error_output("NotRun", self._not_run())
            self._verdict(grade_id, KernelStopped(self._not_run()), failure)
            return [failure]
        printed: list[str] = []
        scope = dict(self.namespace)
        try:
            for name in free_names(source):
                if name in self.answers:  # nothing else of the kernel's reaches a test
                    self._bind(scope, name, kernel, printed)
            out = io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()), \
                    warnings.catch_warnings():
                warnings.simplefilter("ignore")
                exec(compile(source, f"<test cell {grade_id}>", "exec"), scope)
            outputs = [stream(out.getvalue()[:MAX_PRINTED])] if out.getvalue() else []
            failure = None
        except KernelStopped as err:
            self._stop(None, str(err))
            outputs, failure = [], error_output("KernelStopped", f"{err}: the test could not "
                                                "finish")
            self._verdict(grade_id, err, failure)
        except StudentError as err:
            outputs, failure = [], error_output(err.ename, err.evalue)
            self._verdict(grade_id, err, failure)
        except Exception as err:  # noqa: BLE001 - a failed test is an error output
            outputs, failure = [], error_output(type(err).__name__, str(err))
            self._verdict(grade_id, err, failure)
        if printed:
            outputs.insert(0, stream("What your code printed during this test:\n" +
                                     "".join(printed)[:MAX_PRINTED]))
        return outputs + ([failure] if failure is not None else [])

    def _verdict(self, grade_id: str, err: BaseException, failure: NotebookNode) -> None:
        """Record why the test ``grade_id`` failed: its tag from :func:`failure_tag`, and the
        first line of what the student reads (kept as data, escaped where it is written)."""
        first = str(failure.get("evalue", "")).strip().splitlines()
        self.events.append({"event": "verdict", "notebook": self.notebook, "cell": grade_id,
                            "tag": failure_tag(err),
                            "feedback": one_line(first[0] if first else failure["ename"], 240)})

    def _bind(self, scope: dict[str, Any], name: str, kernel: SandboxedKernel,
              printed: list[str]) -> None:
        reply = kernel.request({"op": "lookup", "name": name}, 10)
        kind = reply.get("kind")
        if kind == "callable":
            scope[name] = RemoteFunction(kernel, name, printed, self.answers)
        elif kind == "value":
            try:
                scope[name] = numbers_only(wire.decode(reply.get("value")), f"{name} holds")
            except wire.WireError as err:
                raise StudentError("TypeError", f"{name} holds {err}") from None

    def _stop(self, cell: int | None, why: str) -> None:
        if self.stopped_at is None:
            self.stopped_at = (cell, why)
            where = f" at cell {cell}" if cell else ""
            self.events.append({"event": "kernel stopped", "notebook": self.notebook,
                                "what": f"{self.notebook}: the kernel was stopped{where}: {why}"})

    def _not_run(self) -> str:
        cell, why = self.stopped_at or (None, "")
        where = f" at cell {cell}" if cell else ""
        return f"not run: the kernel was stopped{where} ({why})"

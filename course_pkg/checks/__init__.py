"""The checks of the problem sets: cases, reference answers, mistake tables, withheld names.

One module per assignment (``identity_sigmoid`` for ps1, ``tanh_two_layer`` for ps2,
``matrix_form`` for ps3, ``node_delta`` for ps4), each built on :mod:`course_pkg.checks.feedback`.
The same checks run in two places: in the student's own kernel, where the visible tests of the
released notebook teach (they count nothing), and in the trusted grader
(:mod:`course_pkg.grading.trusted`), where they decide the grade by calling the student's
functions in the sandbox. This package never enters the grading sandbox: there, only empty
shells of its ``check_...`` functions exist, so that a student's cell that imports one still
runs.

Each module's ``WITHHELD`` names the functions of course_pkg that its exercises ask the
student to write, as ``"module:qualname"``; the grader replaces them, inside the sandbox, by
stubs that raise :class:`course_pkg.sandbox.WithheldError` (:mod:`course_pkg.grading.withheld`).
"""

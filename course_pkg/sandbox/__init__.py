"""What runs inside the grading sandbox, and nothing else of the grader.

A student's notebook is run by :mod:`course_pkg.sandbox.kernel`, a small IPython kernel that
the trusted grader (:mod:`course_pkg.grading`) starts under bubblewrap for each submission. It
executes the student's cells and, when a test asks, calls one of the student's functions on
arguments that the grader chose. It answers in plain data (:mod:`course_pkg.sandbox.wire`).

Everything here runs in the student's own interpreter and may be subverted by the student's
code: the grader treats every answer as hostile data and decides no grade from anything but
the values it decodes. The checks, the reference answers and the hidden tests are not here.
"""


class WithheldError(RuntimeError):
    """Raised by a course_pkg function that the grading sandbox withholds (an exercise's answer)."""

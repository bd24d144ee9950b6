"""nbgrader configuration of the backpropagation course (nbgrader 0.9.x).

Run nbgrader from this folder, with the course's venv first on PATH (nbgrader creates its
gradebook with the ``alembic`` command). Committed: this file and ``source/<ps>/*.ipynb``;
release/, submitted/, autograded/, feedback/ and gradebook.db are generated.
"""

import os

c = get_config()  # noqa: F821 (provided by traitlets when it loads this file)

c.CourseDirectory.course_id = "backprop"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))

# nbgrader 0.9 reads the per-cell time limit here (ExecutePreprocessor.timeout is ignored).
# The slowest cell, ps3's training on the digits, takes well under 20 s.
c.Execute.timeout = 120

# The stub a student sees in place of each solution region.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Autograding restores the instructor's version of every test cell (hidden tests included);
# a grade cell that a student deleted is put back rather than silently scored 0.
c.OverwriteCells.add_missing_cells = True

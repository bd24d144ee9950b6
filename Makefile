# Every install step of the course lives here: a fresh clone needs only python3 (>= 3.11, with
# its venv module: Debian's python3-venv) and make. Another Python: make venv PYTHON=/usr/bin/python3
PYTHON ?= python3
VENV   := .venv
BIN    := $(abspath $(VENV))/bin
# nbgrader runs `alembic` and jupyter runs kernels from PATH: put the venv first.
export PATH := $(BIN):$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help venv book book-clean test test-fast lint bench chromium bubblewrap clean

help:
	@echo "make book   - set up the venv and build the website into _build/html"
	@echo "make test   - set up the venv (and Chromium) and run every test"
	@echo "make bench  - run the benchmarks, writing benchmarks/results.md"

$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "$(PYTHON) is Python " + sys.version.split()[0] + ": the course needs 3.11 or newer (make venv PYTHON=...)")'
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { echo "$(PYTHON) cannot make a virtual environment with pip: on Debian or Ubuntu, apt-get install python3-venv"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[book,grader,test]"
	touch $@

venv: $(VENV)/.installed

# Executes every chapter (with the execution cache in _build/.jupyter_cache) and treats every
# Sphinx warning as an error, as tests/test_book_build.py does. The build also makes the wheel
# of course_pkg that the site serves (_build/html/packages/, book/_ext/site_package.py).
book: venv
	COURSE_BOOK_BUILD=1 $(BIN)/jupyter-book build . --builder html -W -n --keep-going
	@ls _build/html/packages/course_pkg-*.whl
	@echo "The website is in _build/html/index.html"

book-clean:
	rm -rf _build

# Chromium for the browser tests: Debian's package, installed when we may (as root).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Chromium is missing: install Debian's 'chromium' package (sudo apt-get install chromium)"; exit 1; fi; }

# bubblewrap for the grading sandbox (course_pkg/grading/sandbox.py): Debian's package.
bubblewrap:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; \
	  else echo "bubblewrap is missing: install Debian's 'bubblewrap' package (sudo apt-get install bubblewrap)"; exit 1; fi; }

# Two test processes (pytest-xdist); the book build and its browser tests stay in one group.
test: venv chromium bubblewrap
	$(BIN)/python -m pytest -n 2 --dist loadgroup --durations=25 tests

test-fast: venv bubblewrap
	$(BIN)/python -m pytest tests -m "not book and not browser and not grading"

lint: venv
	$(BIN)/ruff check course_pkg tests benchmarks

$(VENV)/.bench: $(VENV)/.installed
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[bench]"
	touch $@

bench: $(VENV)/.bench
	$(BIN)/python benchmarks/bench_train_step.py
	$(BIN)/python benchmarks/bench_scaling.py
	$(BIN)/python benchmarks/bench_grading.py
	$(BIN)/python benchmarks/bench_cluster.py
	$(BIN)/python benchmarks/bench_latency.py
	$(BIN)/python benchmarks/bench_training_draws.py

clean:
	rm -rf _build .pytest_cache

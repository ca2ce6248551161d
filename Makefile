# Every target works on a fresh machine with only Python (>= 3.10) and make:
# it creates .venv when missing and installs the project into it first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test test-slow demo lint format clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# setuptools' editable-install notice (flat layout) says nothing a user can act on
	PYTHONWARNINGS=ignore $(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Two pytest workers, one per core of the 2-core machines this project targets: most of the
# suite's time is single-threaded graph building and conversion, so a second worker nearly
# halves it. Files, not single tests, are shared out, so a module's fixtures are built once.
# `make test PYTEST_WORKERS=0` runs the suite in one process.
PYTEST_WORKERS ?= 2

test: $(STAMP)  ## the test suite (slow tests excluded), two workers, about 7 minutes on 2 CPU cores
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile

test-slow: $(STAMP)  ## only the tests marked slow
	$(PY) -m pytest -q -m slow

demo: $(STAMP)  ## the whole job end to end on a small synthetic dataset
	$(PY) -m mobile_skin.demo --out demo_out

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf demo_out .pytest_cache build *.egg-info

.PHONY: android-test android-golden

android-test:  ## the Android app's pure-Kotlin core against Python's goldens (needs kotlinc; ~20 s)
	android_demo/core/run_tests.sh

android-golden: $(STAMP)  ## regenerate those goldens after a change to the encoding, spec or resize
	$(PY) -m mobile_skin.android_golden android_demo/core/src/test/resources/golden

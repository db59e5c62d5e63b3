# TkChat: `make run` starts a local server and the client window; `make test` runs every check.
# Both create the virtualenv .venv and install the packages first (once, again when
# pyproject.toml changes).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Tk needs a display; under CI (no $DISPLAY) the tests run in a virtual one.
XVFB := $(if $(DISPLAY),,$(shell command -v xvfb-run >/dev/null 2>&1 && echo "xvfb-run -a -s '-screen 0 1280x1024x24'"))

.PHONY: run test lint typecheck pytest server clean dist smoke

$(STAMP): pyproject.toml
	@echo ">> creating virtualenv $(VENV) and installing TkChat with its dev tools"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(PY) -m gui --host-local

server: $(STAMP)
	$(PY) -m server

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy

pytest: $(STAMP)
	$(XVFB) $(PY) -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

clean:
	rm -rf $(VENV) build dist test-output .mypy_cache .pytest_cache .ruff_cache

# Double-clickable ChatClient and ChatServer for this OS in dist/ (build_scripts/build.py says
# what it does); `make smoke` runs the built pair against each other (Linux: inside Xvfb).
BUILD_STAMP := $(VENV)/.build-stamp
$(BUILD_STAMP): $(STAMP)
	@echo ">> installing the build tools (PyInstaller, Pillow) into $(VENV)"
	$(PY) -m pip install --quiet -e '.[dev,build]'
	@touch $(BUILD_STAMP)

dist: $(BUILD_STAMP)
	$(PY) build_scripts/build.py $(BUILD_ARGS)

smoke: $(BUILD_STAMP)
	$(PY) build_scripts/smoke_test.py $(SMOKE_ARGS)

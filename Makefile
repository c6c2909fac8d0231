# Musika Bridge: `make run` starts the daemon with the shipped techno preset; `make test` runs the whole suite.
# Both create .venv and install what they need (system packages too, through apt, when run as root).
PYTHON ?= python3
VENV := .venv
PIP := $(VENV)/bin/pip
TORCH_PIN := torch==2.13.0
ARGS ?=

.PHONY: run test lint bench clean system-deps-run system-deps-test

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e .
	touch $@

# torch first, from its pinned CPU wheel, so nothing pulls a CUDA build
$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q $(TORCH_PIN)
	$(PIP) install -q -e '.[test]'
	touch $@ $(VENV)/.installed-run

system-deps-run:
	@scripts/system_deps.sh run

system-deps-test:
	@scripts/system_deps.sh test

run: system-deps-run $(VENV)/.installed-run
	$(VENV)/bin/musika serve --preset techno $(ARGS)

test: system-deps-test $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider $(ARGS)

bench: $(VENV)/.installed-test
	$(VENV)/bin/musika bench $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info

# The README's two commands are `make demo` and `make test`; both create or refresh the venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= demo
# the README shows the demo's figures in figures/; any other profile writes its own folder (figures/long, ...)
FIGURES := $(if $(filter demo,$(PROFILE)),figures,figures/$(PROFILE))

.PHONY: help venv demo test lab benchmark weights clean

help:
	@echo "make demo       run the whole course (every notebook, papermill, profile '$(PROFILE)') into runs/<timestamp>/ and $(FIGURES)/"
	@echo "make test       unit tests + every notebook under nbval on the 'quick' profile"
	@echo "make lab        JupyterLab on the notebooks"
	@echo "make benchmark  the speed benchmarks in benchmarks/ (ratios measured side by side)"
	@echo "make weights    rebuild trained_weights/ (the long profile's three models; an evening on 2 CPU cores)"
	@echo "make venv       only create or refresh $(VENV)"

venv:
	@PYTHON="$(PYTHON)" VENV="$(VENV)" bash scripts/setup_venv.sh

demo: venv
	$(PY) -m sf2f course --profile $(PROFILE) --figures-dir $(FIGURES)

test: venv
	SF2F_PROFILE=quick $(PY) -m pytest

# JupyterLab refuses to run as root (containers, cloud GPU boxes) unless told it is deliberate
LAB_ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: venv
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(LAB_ROOT_FLAG)

benchmark: venv
	$(PY) -m benchmarks

weights: venv
	$(PY) -m sf2f weights build

clean:
	rm -rf runs/notebooks .pytest_cache

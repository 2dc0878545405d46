# stable-audio-ops: one command to set up and run the demo, one to set up and run the tests.
#   make demo   # install everything, render the demo notes, run data_preparation -> autoencoder
#   make test   # install everything, run the test suite
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Telemetry of Kedro, MLflow and DVC off everywhere this Makefile runs.
export DO_NOT_TRACK := true
export KEDRO_DISABLE_TELEMETRY := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup system-deps demo test lint mlflow-ui clean-outputs

# Debian packages for the demo renderer (FluidSynth + the MIT FluidR3 GM soundfont).
system-deps:
	@if [ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] && ldconfig -p | grep -q libfluidsynth; then \
		echo "system packages: fluidsynth + FluidR3_GM present"; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			fluidsynth fluid-soundfont-gm >/dev/null && echo "system packages: installed fluidsynth fluid-soundfont-gm"; \
	else \
		echo "WARNING: the demo renderer needs the Debian packages fluidsynth and fluid-soundfont-gm:"; \
		echo "         sudo apt-get install fluidsynth fluid-soundfont-gm   (tests that render notes will fail without them)"; \
	fi

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11) on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	# torch is pinned first inside requirements.txt: the CPU wheel, never a CUDA build
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

setup: system-deps $(STAMP)

demo: setup
	$(VENV)/bin/kedro run --pipelines=data_preparation,autoencoder
	@echo
	@echo "Done. Browse the runs:   $(VENV)/bin/mlflow ui --backend-store-uri sqlite:///mlflow/mlflow.db --port 5000"
	@echo "Unwrapped autoencoder:   data/06_models/autoencoder.safetensors   (report: data/08_reporting/data_report.md)"

test: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest -q tests

lint: setup
	$(VENV)/bin/ruff check src pipelines tests benchmarks train.py unwrap_model.py

mlflow-ui: setup
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///mlflow/mlflow.db --host 127.0.0.1 --port 5000

# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
HOST ?= 127.0.0.1
PORT ?= 8000

export HF_HUB_OFFLINE ?= 1
export RAY_USAGE_STATS_ENABLED ?= 0

.PHONY: run test lint bench-api clean system-test-deps

# torch: on a host without an NVIDIA GPU, the CPU build 2.13.0 (installed from a
# local wheel on these machines); with a GPU, whatever CUDA build pip resolves.
$(VENV)/.installed-run: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	if ! command -v nvidia-smi >/dev/null 2>&1; then $(PIP) torch==2.13.0; fi
	$(PIP) -e '.[engine]'
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed-run
	$(PIP) -e '.[engine,test]'
	touch $@

run: $(VENV)/.installed-run
	$(VENV)/bin/ember serve --host $(HOST) --port $(PORT)

# Debian's chromium for the browser tests (never a downloaded browser build).
system-test-deps:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing: sudo apt-get install chromium (browser tests will be skipped)"; fi; \
	fi

test: $(VENV)/.installed-test system-test-deps
	$(PY) -m ruff check src tests bench
	$(PY) -m mypy
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(PY) -m ruff check src tests bench
	$(PY) -m mypy

bench-api: $(VENV)/.installed-test
	$(PY) bench/api.py

clean:
	rm -rf $(VENV) .pytest_cache

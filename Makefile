# Build, test and demo entry points. `make install` is idempotent: a stamp file skips it when
# the requirements files and pyproject.toml are unchanged.

VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
LINT_PATHS := dietsnn_deploy exporters hw_sim tests benchmarks
FASHION_MNIST_DIR := /usr/share/datasets/fashion-mnist

.PHONY: install test lint demo clean

install: $(STAMP)

# torch first, pinned, so that nothing later pulls a CUDA build; lava-nc/lava-dl declare
# Python <3.11 and old torch, hence --no-deps --ignore-requires-python (their real runtime
# needs are in requirements.txt).
$(STAMP): requirements.txt requirements-interop.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install torch==2.13.0
	$(PIP) install -r requirements.txt
	$(PIP) install --no-deps -r requirements-interop.txt
	$(PIP) install --no-deps --ignore-requires-python lava-nc==0.10.0 lava-dl==0.6.0
	$(PIP) install --no-deps -e .
	@if [ ! -d $(FASHION_MNIST_DIR) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y dataset-fashion-mnist) \
			|| echo "warning: could not install dataset-fashion-mnist; its tests will be skipped"; \
	fi
	touch $(STAMP)

test: install
	$(VENV)/bin/pytest -q
	$(MAKE) lint

lint: install
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/lint-imports --no-cache

demo: install
	$(VENV)/bin/dietsnn-deploy demo

clean:
	rm -rf runs .pytest_cache .ruff_cache
	find . \( -path ./.venv -o -path ./.git \) -prune -o -name __pycache__ -type d -exec rm -rf {} +

# Two commands do everything on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.xfusion-installed

.PHONY: demo test lint bench bench-gpu install clean

install: $(STAMP)

# Torch goes in first so that the package's torch range is already met and pip
# never pulls a CUDA build; TORCH_SPEC overrides it on GPU hosts.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/xfusion-bluesky demo

# Two processes: the suite mostly waits on subprocesses and servers. Tests that
# time themselves on the wall clock (marked serial) run alone afterwards.
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadscope -m "not serial"
	$(BIN)/python -m pytest -m serial

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_fusion.py

# Every GPU speed measurement in one run, < 6 min; JSON + markdown in BENCH_OUT.
# Needs a CUDA torch in its own venv, e.g. (PyPI's Linux wheel is a CUDA build):
#   make bench-gpu VENV=.venv-gpu TORCH_SPEC='torch==2.13.0'
BENCH_OUT ?= benchmarks/results
bench-gpu: $(STAMP)
	$(BIN)/python benchmarks/bench_gpu.py --out $(BENCH_OUT)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

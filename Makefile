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
SOURCES := setup.py $(wildcard build_support/*.py) $(shell find csrc -type f 2>/dev/null)
PYTEST_ARGS ?=
JOBS ?= 2

.PHONY: all setup install test bench bench-quick lint ctest sanitize gpu-check cuda-build \
	gpu-wheels wheel-check clean

all: test

$(PY):
	@if $(PYTHON) -c "import torch" 2>/dev/null; then \
		echo "venv: using the installed torch"; \
		$(PYTHON) -m venv --system-site-packages $(VENV); \
	else \
		$(PYTHON) -m venv $(VENV); \
	fi

# requirements-dev.txt: the test/bench/train dependencies (tonic with its own dependencies,
# so `import tonic` works); requirements-peers.txt: peers whose declared dependencies pull
# torchvision/torchaudio, installed with --no-deps (what they import is in the first file).
$(VENV)/.deps: $(PY) $(wildcard requirements-*.txt)
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
	$(PY) -m ruff check fastsnn kernels tests bench tools build_support setup.py

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

# No GPU needed: the whole extension built with CUDA (sm_90) in a venv with the GPU
# machine's torch (~/.cache/fastsnn/cuda-venv, reused), every op's CPU and CUDA kernels
# checked in the dispatcher, every Triton kernel compiled for sm_90, then the test suite
# in that venv (tools/cuda_build.sh).
cuda-build:
	JOBS=$(JOBS) bash tools/cuda_build.sh

# Wheels the GPU machine (python 3.12, no network) may lack, into .whl/ (ignored; carried
# with the tree; tools/gpu_check.sh installs the ones its python does not have). ninja:
# without it torch builds extensions one file at a time.
GPU_PYTHON_VERSION ?= 3.12
gpu-wheels:
	$(PYTHON) -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
		--python-version $(GPU_PYTHON_VERSION) -d .whl -r requirements-peers.txt \
		loguru tqdm scikit-learn scipy joblib threadpoolctl ninja

# Builds the wheel with .venv's torch, installs it into a fresh venv and smoke-tests it there
# (tools/wheel_check.sh).
wheel-check: $(VENV)/.deps
	PYTHON=$(PYTHON) TORCH_VERSION=$(TORCH_VERSION) bash tools/wheel_check.sh $(PY)

clean:
	rm -rf build dist $(VENV) fastsnn/_C*.so fastsnn/_build_info.py *.egg-info

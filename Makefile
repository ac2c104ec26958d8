# gennorm: `make run` trains and evaluates the quickstart model; `make test` runs every test.
# Both create .venv and install gennorm on first use; `make test` adds the test tools.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# TORCH_INDEX=https://download.pytorch.org/whl/cpu: PyTorch from that index first (the CPU-only wheels, ~1 GB
# instead of ~6 GB with the CUDA libraries), where the index offers wheels for this Python and machine
TORCH_INDEX ?=

.PHONY: run test install browser clean mutation

$(BIN)/gennorm: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(if $(TORCH_INDEX),$(BIN)/python -m pip install torch torchvision --index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install -e .
	touch $(BIN)/gennorm

# the test tools (pytest, onnxruntime, playwright, the reference FID packages): `make test` only
$(VENV)/.dev: $(BIN)/gennorm
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(VENV)/.dev

install: $(VENV)/.dev

# Headless Chromium for the browser tests (Debian package; Playwright's own download is not used).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: chromium is not installed; browser tests will skip (apt-get install chromium)"; fi; }

run: $(BIN)/gennorm
	$(BIN)/gennorm quickstart

test: $(VENV)/.dev browser
	$(BIN)/python -m pytest -q

# Mutation testing with mutmut ([tool.mutmut] in pyproject.toml; docs/mutation.md): hours on the 2-core VM,
# not in CI nor in `make test`; reruns are incremental (results and the test map stay in mutants/).
# One module: make mutation MUTANTS='gennorm.train.optim*'. Then .venv/bin/mutmut results / show NAME.
MUTANTS ?=
mutation: $(VENV)/.dev
	nice -n 19 $(BIN)/mutmut run --max-children 1 $(if $(MUTANTS),"$(MUTANTS)")

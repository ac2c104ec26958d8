# gennorm: `make run` trains and evaluates the quickstart model; `make test` runs every test.
# Both create .venv and install gennorm (+ test tools) on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test install browser clean

$(BIN)/gennorm: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(BIN)/gennorm

install: $(BIN)/gennorm

# Headless Chromium for the browser tests (Debian package; Playwright's own download is not used).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: chromium is not installed; browser tests will skip (apt-get install chromium)"; fi; }

run: install
	$(BIN)/gennorm quickstart

test: install browser
	$(BIN)/python -m pytest -q

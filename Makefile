# The two commands of the README: `make run` and `make test`. Both install what is missing.
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export DO_NOT_TRACK := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export UNSTRUCTURED_DISABLE_NOTICE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install run test lint unit bench

$(STAMP): pyproject.toml scripts/install.sh
	./scripts/install.sh
	touch $(STAMP)

install: $(STAMP)

## Ingest corpus/ into the embedded store under KB_DATA_DIR (default ./data) and serve on 127.0.0.1:8000.
run: install
	$(BIN)/kb ingest corpus
	KB_AUTH=$${KB_AUTH:-dev} $(BIN)/kb serve --host 127.0.0.1 --port 8000

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## Debian's chromium for the chat page's browser tests (not needed to serve the page).
/usr/bin/chromium:
	./scripts/install_browser.sh

## Lint, types, then every test tier (fast and slow).
test: lint /usr/bin/chromium
	$(BIN)/pytest

## The fast tier only, for the edit-test loop.
unit: install
	$(BIN)/pytest -m "not slow"

## Benchmarks under evals/ (not part of the test command: they measure, they do not assert).
bench: install
	$(BIN)/python -m evals.bench_ingest
	$(BIN)/python -m evals.bench_retrieval
	$(BIN)/python -m evals.bench_service

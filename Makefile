# The two commands of the README: `make run` and `make test`. Both install what is missing.
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export DO_NOT_TRACK := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export UNSTRUCTURED_DISABLE_NOTICE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install run test lint unit bench eval

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

## The CoE's evaluation suite (about 27 minutes on 2 cores, most of it the local model judging each
## answer): the golden and employee sets through our assistant and through plain LlamaIndex over corpus/,
## compared with the committed baseline runs, one HTML report, then the release gate (exit 1 on
## a regression). Runs go to build/eval, fresh each time.
EVAL_OUT := build/eval
EVAL_RUN := KB_DATA_DIR=$(EVAL_OUT)/data KB_CORPUS_DIR=corpus $(BIN)/kb eval run
eval: install
	rm -rf $(EVAL_OUT)
	$(EVAL_RUN) --dataset golden --generator extractive --ingest corpus --out $(EVAL_OUT)/golden
	$(EVAL_RUN) --dataset employee --generator extractive --out $(EVAL_OUT)/employee
	$(EVAL_RUN) --dataset golden --llamaindex evals.plain_llamaindex:engine --out $(EVAL_OUT)/golden-plain-llamaindex
	$(BIN)/kb eval compare evals/baselines/golden-baseline $(EVAL_OUT)/golden
	$(BIN)/kb eval compare $(EVAL_OUT)/golden-plain-llamaindex $(EVAL_OUT)/golden
	$(BIN)/kb eval report $(EVAL_OUT)/golden evals/baselines/golden-baseline $(EVAL_OUT)/golden-plain-llamaindex --out $(EVAL_OUT)/golden.html
	$(BIN)/kb eval report $(EVAL_OUT)/employee evals/baselines/employee-baseline --out $(EVAL_OUT)/employee.html
	$(BIN)/kb eval gate $(EVAL_OUT)/golden --baseline evals/baselines/golden-baseline --thresholds evals/gate.yaml
	$(BIN)/kb eval gate $(EVAL_OUT)/employee --baseline evals/baselines/employee-baseline --thresholds evals/gate.yaml

# kawa's entry points. Every target sets up .venv first; CI calls `make test` unchanged.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench serve clean docs dist

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,torch,redis,postgres,ray,notebook,otel]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/kawa demo

test: $(STAMP)
	bash scripts/test-services.sh
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -q --durations=25

lint: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

bench: $(STAMP)
	$(BIN)/python -m benchmarks.ingest

# The batch ML loop (issue 3), each next to its peer; Feast and MLflow install into benchmarks/.peers/.
.PHONY: bench-ml
bench-ml: $(STAMP)
	$(BIN)/python -m benchmarks.training_set
	$(BIN)/python -m benchmarks.batch_predict
	$(BIN)/python -m benchmarks.online

# Real-time predictions (issue 4): ack -> readable under background load, and streaming feature cost.
.PHONY: bench-realtime
bench-realtime: $(STAMP)
	$(BIN)/python -m benchmarks.realtime
	$(BIN)/python -m benchmarks.streaming

.PHONY: bench-scaleout
bench-scaleout: $(STAMP)
	$(BIN)/python -m benchmarks.scaleout_ingest
	$(BIN)/python -m benchmarks.ray_batch

# 30 minutes of mixed load on a real kawa serve; fails if a process's memory or open files grow,
# or an acknowledged event is lost (issue 10). Not part of `make test`.
.PHONY: soak
soak: $(STAMP)
	$(BIN)/python -m benchmarks.soak --minutes 30

serve: $(STAMP)
	$(BIN)/kawa serve

# The documentation site: reference pages generated from the code, then mkdocs (strict) into site/.
docs: $(STAMP)
	$(BIN)/python -m kawa._docs docs/reference
	$(BIN)/mkdocs build --strict --site-dir site

# The sdist, and the wheel built from it, into dist/ (hatchling; version from src/kawa/__init__.py).
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --outdir dist .

clean:
	rm -rf $(VENV) .kawa build dist site docs/reference

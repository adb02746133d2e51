# One venv, created on demand; every target that runs code depends on it.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: run test proto lint bench chaos clean screenshots

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Start core + gateway (+ simulated workers) on the embedded defaults; STORE=aerospike: two
## cores on ASG_STORE (default aerospike://127.0.0.1:3000/asg), a local node started if none answers.
STORE ?= sqlite
run: $(STAMP)
	$(if $(filter aerospike,$(STORE)),ASG_STORE="$${ASG_STORE:-aerospike://127.0.0.1:3000/asg}" )$(BIN)/asg dev

## Run the whole test suite (what CI runs).
test: $(STAMP)
	sh scripts/browser_deps.sh
	$(BIN)/ruff check .
	$(BIN)/mypy asg_grpc asg_common rest_gateway asg_gateway worker_agent asg_challenge
	$(BIN)/pytest --durations=25 || test $$? -eq 5  # 5 = no tests collected: not a failure of the code

## Regenerate the committed gRPC stubs from proto/.
proto: $(STAMP)
	$(BIN)/python scripts/gen_protos.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy asg_grpc asg_common rest_gateway asg_gateway worker_agent asg_challenge
	$(BIN)/vulture  # dead code; paths and the whitelist in pyproject.toml [tool.vulture]

## Benchmarks: each starts its own stack and prints JSON (see docs/benchmarks.md).
bench: $(STAMP)
	$(BIN)/python bench/submit.py
	$(BIN)/python bench/labels.py
	$(BIN)/python bench/webhooks.py
	$(BIN)/python bench/jobs.py
	$(BIN)/python bench/settle.py
	$(BIN)/python bench/challenge.py

## The fault campaign, long: 33 rounds (each fault 3 times) under load, then the invariants;
## prints a table per round and fails on any violation (tests/chaos/, docs/reliability.md).
chaos: $(STAMP)
	$(BIN)/python -m tests.chaos.campaign --rounds 33

## PNGs of each Console panel and the web labeler's page under docs/screenshots/ (needs /usr/bin/chromium).
screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .mypy_cache

# boundary-celery developer tasks. `make` (or `make help`) lists them.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
# The lowest supported Celery stack (constraints/lowest.txt) for the end-to-end subset.
VENV_LOWEST ?= .venv-lowest
LOWEST_TESTS ?= tests/compat tests/contract tests/e2e tests/bench/test_bulk.py
# Left out on the lowest stack, to keep `make test` short: what exercises mostly our own
# code (the 70 s lease renewal, scheduler timing, cancellation, the envelope checks, the
# demo, tenancy; Sentinel and TLS, run on both stacks by hand when they landed); the
# crash, restart, shutdown, outcome, retry and priority tests run on both stacks.
LOWEST_DESELECT ?= --deselect tests/e2e/test_leases.py::test_a_70_s_job_runs_once_while_a_second_worker_idles \
	--ignore=tests/e2e/test_timing.py --ignore=tests/e2e/test_cancel.py \
	--ignore=tests/e2e/test_envelope_fuzz.py --ignore=tests/e2e/test_malformed.py \
	--ignore=tests/e2e/test_demo.py --ignore=tests/e2e/test_tenancy.py \
	--ignore=tests/e2e/test_sentinel.py --ignore=tests/e2e/test_tls.py
PYTHON ?= python3
# Extra arguments for pytest, e.g. `make test PYTEST_ARGS="-k settings -x"`.
PYTEST_ARGS ?=

.PHONY: help install install-dev lint test demo bench soak clean redis stop-redis

help: ## List the targets
	@echo "boundary-celery make targets:"
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'

# --- environments -------------------------------------------------------------------------

$(VENV)/.installed-dev: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	@touch $@

$(VENV_LOWEST)/.installed: pyproject.toml constraints/lowest.txt
	@test -x $(VENV_LOWEST)/bin/python || $(PYTHON) -m venv $(VENV_LOWEST)
	$(VENV_LOWEST)/bin/python -m pip install -q --upgrade pip
	$(VENV_LOWEST)/bin/python -m pip install -q -c constraints/lowest.txt -e . \
		'pytest>=8' 'pytest-timeout>=2.3' 'hypothesis>=6.100'
	@touch $@

$(VENV)/.installed-bench: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,bench]'
	@touch $@

install: $(VENV)/.installed ## Create .venv with the runtime dependencies

install-dev: $(VENV)/.installed-dev ## Create .venv with the development dependencies

# --- checks -------------------------------------------------------------------------------

lint: $(VENV)/.installed-dev ## ruff check + mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# Finds (or starts) a Redis, runs pytest against it, then stops the private Redis whatever
# happened. pytest's exit code is the target's; 5 ("no tests collected") counts as failure.
test: lint $(VENV_LOWEST)/.installed ## Lint, the suite, then the e2e subset on the lowest Celery
	@bash scripts/ensure_chromium.sh  # the dashboard test drives Debian's chromium
	@trap 'bash scripts/stop_private_redis.sh' EXIT; \
	trap 'exit 130' INT TERM; \
	REDIS_URL_FOR_TESTS="$$(bash scripts/ensure_redis.sh | tail -n 1)"; \
	if [ -z "$$REDIS_URL_FOR_TESTS" ]; then echo "make test: no Redis for the tests" >&2; exit 1; fi; \
	echo "make test: BOUNDARY_TEST_REDIS_URL=$$REDIS_URL_FOR_TESTS"; \
	rc=0; \
	BOUNDARY_TEST_REDIS_URL="$$REDIS_URL_FOR_TESTS" $(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) || rc=$$?; \
	if [ "$$rc" -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; \
	if [ "$$rc" -ne 0 ]; then exit $$rc; fi; \
	echo "make test: end-to-end subset on the lowest Celery stack (constraints/lowest.txt)"; \
	BOUNDARY_TEST_REDIS_URL="$$REDIS_URL_FOR_TESTS" $(VENV_LOWEST)/bin/python -m pytest -q \
		-p no:cacheprovider $(LOWEST_TESTS) $(LOWEST_DESELECT) || rc=$$?; \
	if [ "$$rc" -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; \
	exit $$rc

redis: ## Print the Redis URL the tests would use (may start a private one)
	@bash scripts/ensure_redis.sh

stop-redis: ## Stop the private Redis started by `make redis` / `make test`
	@bash scripts/stop_private_redis.sh

# --- running ------------------------------------------------------------------------------

demo: $(VENV)/.installed ## Run the demo (examples/demo.py)
	$(PY) -m examples.demo

# Extra arguments for the benchmarks, e.g. `make bench BENCH_ARGS="--only scheduler"`.
BENCH_ARGS ?=

bench: $(VENV)/.installed-bench ## Run the benchmarks (BENCH_ARGS="--only scheduler" for one)
	$(PY) -m benchmarks $(BENCH_ARGS)

soak: $(VENV)/.installed-dev ## Reliability soak, not in `make test` (SOAK_ARGS="--jobs 2000")
	$(PY) -m benchmarks.soak $(SOAK_ARGS)

clean: ## Remove .venv, caches and the private Redis state
	-@bash scripts/stop_private_redis.sh 2>/dev/null
	rm -rf $(VENV) $(VENV_LOWEST) .pytest_cache .mypy_cache .ruff_cache .hypothesis .redis-test *.egg-info build dist
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

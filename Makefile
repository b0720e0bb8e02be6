.PHONY: setup run test lint bench fuzz

setup:
	scripts/bootstrap.sh

run:
	scripts/run.sh

test:
	scripts/test.sh

lint: setup
	.venv/bin/ruff check .

# Benchmarks against APScheduler and Celery (issue #8); BENCH_ARGS=--quick for a smoke test.
bench:
	scripts/bench.sh $(BENCH_ARGS)

# API fuzzing (tests/fuzz, README "API fuzzing"): the CI run is part of `make test`; this one is longer.
FUZZ_MAX_EXAMPLES ?= 300
fuzz: setup
	FUZZ_MAX_EXAMPLES=$(FUZZ_MAX_EXAMPLES) .venv/bin/python -m pytest -q -p no:cacheprovider tests/fuzz

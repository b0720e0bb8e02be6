.PHONY: setup run test lint

setup:
	scripts/bootstrap.sh

run:
	scripts/run.sh

test:
	scripts/test.sh

lint: setup
	.venv/bin/ruff check .

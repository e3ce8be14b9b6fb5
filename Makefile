.PHONY: test lint demo bootstrap

bootstrap:
	bash scripts/bootstrap.sh

test:
	bash scripts/test.sh $(ARGS)

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

demo:
	bash scripts/bootstrap.sh --python-only
	.venv/bin/civicpulse demo $(ARGS)

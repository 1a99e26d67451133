# The two entry points of README.md: `make demo` (the full pipeline on examples/, short schedules) and `make test`;
# `make reproduce` runs the same pipeline with the full settings of examples/configs/ into examples/out/full/.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo reproduce test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

# Two steps at a time with one thread each: on 2 cores this beats one step on two threads for models this small.
demo: $(STAMP)
	@start=$$(date +%s); OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(MAKE) -j2 -C examples all SETTINGS=demo MMREC=$(abspath $(BIN))/mmrec \
	  && echo "demo finished in $$(( $$(date +%s) - start )) s"

reproduce: $(STAMP)
	@start=$$(date +%s); $(MAKE) -C examples all SETTINGS=full OUT=out/full MMREC=$(abspath $(BIN))/mmrec \
	  && echo "reproduce finished in $$(( $$(date +%s) - start )) s"

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

# Two commands do all set-up: `make demo` and `make test` (each creates .venv on first use).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench fuzz clean venv

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,capture,dist,pandas,rtl]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

test: $(STAMP)
	OPENBLAS_NUM_THREADS=1 $(BIN)/python -m pytest tests

bench: $(STAMP)
	$(BIN)/python scripts/bench.py --out out/bench

fuzz: $(STAMP)
	AXELSIM_FUZZ_EXAMPLES=2000 $(BIN)/python -m pytest tests -k fuzz

clean:
	rm -rf $(VENV) out

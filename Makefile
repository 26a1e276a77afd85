# Everything a user needs, from a fresh machine with Python 3.11.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DVC_NO_ANALYTICS := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: install demo test lint serve repro clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	@if $(BIN)/pip show torchvision >/dev/null 2>&1; then \
	  echo "torchvision is installed in $(VENV): it breaks transformers on this torch; remove it" >&2; exit 1; fi
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/sodforge demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check engine tasks flows annotation_ui sodforge tests benchmarks

serve: $(STAMP)
	$(BIN)/sodforge serve

repro: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

clean:
	rm -rf $(VENV) .prefect demo-run

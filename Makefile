# Everything a user needs, from a fresh machine with Python 3.11.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DVC_NO_ANALYTICS := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

CHROMIUM ?= /usr/bin/chromium

.PHONY: install browser demo test lint serve repro clean

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

# Debian's headless Chromium for the browser test (never a downloaded browser build): installed
# with apt-get as root, or through sudo.
browser:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = "0" ]; then SUDO=""; \
	  elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; \
	  else echo "make test needs Debian's chromium for the browser test: run 'apt-get install -y chromium' as root" >&2; exit 1; fi; \
	  if ! command -v apt-get >/dev/null 2>&1; then \
	    echo "make test needs Chromium at $(CHROMIUM) for the browser test (no apt-get here: install it, or pass CHROMIUM=PATH)" >&2; exit 1; fi; \
	  echo "installing Debian's chromium for the browser test (apt-get, about a minute)"; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get -o DPkg::Lock::Timeout=900 install -y -qq chromium >/dev/null; \
	fi

test: $(STAMP) browser
	SODFORGE_CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check engine tasks flows annotation_ui sodforge tests benchmarks

serve: $(STAMP)
	$(BIN)/sodforge serve

# One torch thread: float sums then run in the same order on any machine, so the outputs are the
# same bytes as the committed dvc.lock whatever the core count (the sample set is tiny anyway).
repro: $(STAMP)
	OMP_NUM_THREADS=1 PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

clean:
	rm -rf $(VENV) .prefect demo-run

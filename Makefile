# The README's commands. Everything runs inside .venv, created on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | sha256sum | cut -c1-12)
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: book test lab clean data bench check student release serve venv

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

venv: $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build . -W -n --keep-going
	@echo "The book is in _build/html: open file://$(CURDIR)/_build/html/index.html"

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest --nbval

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

check: $(STAMP)
	$(BIN)/ambientlab check-env

student: $(STAMP)
	$(BIN)/ambientlab student _build/student

release: $(STAMP)
	$(BIN)/ambientlab release _build/release --student _build/student

# Serve the built book on this machine only (build it first with `make book`).
PORT ?= 8000
serve:
	@test -f _build/html/index.html || { echo "no book yet: run make book first"; exit 1; }
	@echo "The book: http://127.0.0.1:$(PORT)/  (Ctrl-C stops)"
	$(PYTHON) -m http.server $(PORT) --bind 127.0.0.1 --directory _build/html

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/ $(ROOT_FLAG)

data: $(STAMP)
	$(BIN)/ambientlab data

clean:
	rm -rf _build .pytest_cache .hypothesis .ruff_cache

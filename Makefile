# The README's commands. Everything runs inside .venv, created on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | sha256sum | cut -c1-12)
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: book catalogs test lab clean data bench check student release serve venv tools publish

# uv (pinned in requirements.txt) installs the pinned stack: pip took 90 s with its cache warm, uv
# takes about 25 s, compiling the .pyc files included (without them every process compiles anew).
$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $$(grep '^uv==' requirements.txt)
	$(BIN)/uv pip install -q --python $(BIN)/python --compile-bytecode -r requirements.txt
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

venv: $(STAMP)

# The system tools of the one list (src/ambientlab/live/systools.py): installed with apt-get when
# missing (as root), otherwise the command to run is printed. Needs only the system's python3.
tools:
	@$(PYTHON) src/ambientlab/live/systools.py install

# Both editions, in parallel: English at _build/html, Chinese (from locale/zh_CN) at _build/html/zh.
book: $(STAMP)
	$(BIN)/python book/build.py --out _build
	@echo "The book is in _build/html: open file://$(CURDIR)/_build/html/index.html (中文版: _build/html/zh/index.html)"

# After changing English prose: merge the new messages into the Chinese catalogs (new ones arrive
# untranslated, changed ones fuzzy); `python book/build.py check` lists what is left to translate.
catalogs: $(STAMP)
	$(BIN)/python book/build.py catalogs

# Three pytest-xdist workers on this project's two-core machines (the lab tests wait on the network
# often enough: 2 workers took 215 s, 3 took 194 s, 4 took 233 s), a test file to a worker (a
# notebook's cells share one kernel, and a module's lab is built once), files in collection order
# (the kernel and browser tests, which take longest, first). tests/early.py spares each pytest
# process a 3 s import that the tests never use.
JOBS ?= 3
test: tools $(STAMP)
	$(BIN)/ruff check src tests benchmarks notebooks book
	$(BIN)/python -m pytest -p tests.early --nbval -n $(JOBS) --dist loadfile --no-loadscope-reorder

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

check: tools $(STAMP)
	$(BIN)/ambientlab check-env

# The workshop kit in English, or with the Chinese edition's prose: make student LANG=zh
# (only LANG=zh selects it; a locale such as LANG=zh_CN.UTF-8 in your shell does not).
KIT_LANG := $(if $(filter zh,$(LANG)),zh,en)
KIT_DIR := _build/student$(if $(filter zh,$(KIT_LANG)),-zh,)
student: $(STAMP)
	LANG=C.UTF-8 $(BIN)/ambientlab student $(KIT_DIR) --lang $(KIT_LANG)

release: $(STAMP)
	LANG=C.UTF-8 $(BIN)/ambientlab release _build/release$(if $(filter zh,$(KIT_LANG)),-zh,) --student $(KIT_DIR) --lang $(KIT_LANG)

# Serve the built book on this machine only (build it first with `make book`).
PORT ?= 8000
serve:
	@test -f _build/html/index.html || { echo "no book yet: run make book first"; exit 1; }
	@echo "The book: http://127.0.0.1:$(PORT)/  (Ctrl-C stops)"
	$(PYTHON) -m http.server $(PORT) --bind 127.0.0.1 --directory _build/html

# Put the built book on the gh-pages branch of this repository (ghp-import, with .nojekyll so that
# _static/ is served). Nothing is pushed unless PUSH names a remote: make publish PUSH=origin
HTML ?= _build/html
PUBLISH_REPO ?= $(CURDIR)
PUSH ?=
publish:
	@test -f $(HTML)/index.html || { echo "no book in $(HTML): run make book first"; exit 1; }
	@test -x $(BIN)/ghp-import || { echo "ghp-import is not installed: run make book first"; exit 1; }
	cd $(PUBLISH_REPO) && $(abspath $(BIN))/ghp-import --no-jekyll --branch gh-pages \
		--message "Publish the book from $$(git -C $(CURDIR) rev-parse --short HEAD)" \
		$(if $(PUSH),--push --remote $(PUSH)) $(abspath $(HTML))

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/ $(ROOT_FLAG)

data: $(STAMP)
	$(BIN)/ambientlab data

clean:
	rm -rf _build .pytest_cache .hypothesis .ruff_cache

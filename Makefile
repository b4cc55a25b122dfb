# nnlab: two commands.  `make lab` opens the labs in JupyterLab; `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.nnlab-installed

.PHONY: lab test labs models unit notebooks bench browser-test clean-cache help

help:
	@echo "make lab     create .venv if needed, install nnlab, start JupyterLab on labs/"
	@echo "make test    create .venv if needed, then build labs, train/cache lab models, run all tests"
	@echo "make labs    regenerate labs/ from solutions/"
	@echo "make bench   install the peers ([bench-peers] extra) and run the benchmarks in bench/"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev,bench,browser]'
	touch $(STAMP)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab labs/

labs: $(STAMP)
	$(PY) -m nnlab.course.build

models: $(STAMP)
	$(PY) -m nnlab.models

# The full suite: labs/ must match what the build produces (tested), lab models are trained once and cached,
# then unit tests and nbval over labs/ and solutions/, then the browser test.
test: $(STAMP)
	$(PY) -m nnlab.models
	$(PY) -m pytest
	$(MAKE) browser-test

unit: $(STAMP)
	$(PY) -m pytest tests

notebooks: $(STAMP)
	$(PY) -m pytest labs solutions

# The labs in headless Chromium (tests/browser): installs Debian's chromium (apt-get) and the [browser] extra if
# missing, and FAILS with a message when it cannot; never skipped. Screenshots go to test-output/browser/.
.PHONY: browser-deps
browser-deps: $(STAMP)
	PY=$(PY) bash tests/browser/run.sh --deps-only

browser-test: $(STAMP)
	PY=$(PY) bash tests/browser/run.sh

$(VENV)/.nnlab-bench-peers: $(STAMP)
	$(PY) -m pip install -e '.[bench-peers]'
	touch $@

bench: $(VENV)/.nnlab-bench-peers
	for f in bench/bench_*.py; do $(PY) $$f || exit 1; done

clean-cache:
	rm -rf data/cache

# Every solution executed (nbclient; NNLAB_DATA from the environment), each figure as a PNG, one index.html and the
# mechanical-fault report under test-output/gallery/ (tests/test_gallery.py then checks those figures).
.PHONY: gallery
gallery: $(STAMP)
	$(PY) -m nnlab.course.gallery

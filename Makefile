# nnlab: two commands.  `make lab` opens the labs in JupyterLab; `make test` runs every unit test and notebook.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.nnlab-installed

.PHONY: lab test test-slow test-all labs models ship unit notebooks bench browser-test clean-cache help

help:
	@echo "make lab        create .venv if needed, install nnlab, start JupyterLab on labs/"
	@echo "make test       create .venv if needed, verify the shipped lab models, run every unit test and every notebook"
	@echo "                (in parallel, timed tiers; under 10 minutes from a fresh clone on 2 cores)"
	@echo "make test-slow  the slow tier (retraining, long quality tests, grading every lab) and the browser test"
	@echo "make test-all   both: what CI runs"
	@echo "make ship       retrain every lab model from its recipe, compare, write nnlab/models/weights (NAMES=... for some)"
	@echo "make labs       regenerate labs/ from solutions/"
	@echo "make bench      install the peers ([bench-peers] extra) and run the benchmarks in bench/"

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

# The lab models ship with nnlab (nnlab/models/weights): `python -m nnlab.models` only verifies them (and trains
# into the cache a model that is not shipped). After adding or changing a model in the zoo, with the full datasets:
# `make ship` (all) or `$(PY) -m nnlab.models --retrain --ship NAME` (one), then commit nnlab/models/weights.
ship: $(STAMP)
	$(PY) -m nnlab.models --retrain --ship $(NAMES)

# The tests, in tiers, each timed (printed at the end, kept in test-output/tiers.txt and tiers-slow.txt):
#   make test       models  verify the shipped lab models
#                   fast    every unit test in tests/ and nbval over every notebook of labs/ and solutions/, in
#                           parallel (pytest-xdist, one worker per core; --dist loadfile keeps each notebook's cells
#                           in order on one worker)
#   make test-slow  slow    retraining, long quality tests, grading every lab (@pytest.mark.slow), also parallel
#                   browser the labs in headless Chromium
#   make test-all   all four; CI (.ci/run) runs `make test`, then `make test-slow`.
# JOBS=1 runs the tests serially.
JOBS   ?= auto
XDIST  := $(if $(filter 1,$(JOBS)),,-n $(JOBS) --dist loadfile)
TIER    = t=$$(date +%s); $(1) || exit 1; echo "tier $(2): $$(( $$(date +%s) - t )) s" | tee -a test-output/$(3)

test: $(STAMP) sandbox-deps
	@mkdir -p test-output && : > test-output/tiers.txt
	@$(call TIER,$(PY) -m nnlab.models,models,tiers.txt)
	@$(call TIER,$(PY) -m pytest $(XDIST) -m "not slow and not browser",fast,tiers.txt)
	@echo "--- time of each tier" && cat test-output/tiers.txt

test-slow: $(STAMP) sandbox-deps
	@mkdir -p test-output && : > test-output/tiers-slow.txt
	@$(call TIER,$(PY) -m pytest $(XDIST) -m "slow and not browser",slow,tiers-slow.txt)
	@$(call TIER,$(MAKE) --no-print-directory browser-test,browser,tiers-slow.txt)
	@echo "--- time of each tier" && cat test-output/tiers-slow.txt

test-all:
	@$(MAKE) --no-print-directory test
	@$(MAKE) --no-print-directory test-slow
	@echo "--- time of each tier, all" && cat test-output/tiers.txt test-output/tiers-slow.txt

unit: $(STAMP)
	$(PY) -m pytest $(XDIST) tests

notebooks: $(STAMP)
	$(PY) -m pytest $(XDIST) labs solutions

# The grading sandbox (nnlab.course.sandbox) runs submissions under bubblewrap: installed (apt-get) when missing,
# and a clear failure when it cannot be.
.PHONY: sandbox-deps
sandbox-deps:
	sh tests/sandbox_deps.sh

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

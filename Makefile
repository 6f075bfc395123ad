# slim: every stage of the pipeline as a make target. `make pipeline` runs them all on the demo data.
CONFIG ?= default
# the offline guard, always: no update checks, no pip installs, no downloads (slim/offline.py)
export SLIM_OFFLINE := 1
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: pipeline test test-fast venv data train sparsity prune finetune transfer val export vis report bench bench-hard clean

venv: $(STAMP)

$(STAMP): setup.cfg setup.py
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch and torchvision as a matching pair (see README: other pairs fail to import torchvision ops)
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1 || $(PY) -m pip install -q torch torchvision
	$(PY) -m pip install -q -e .[test]
	touch $(STAMP)

# each stage target is the slim command of the same name
data train sparsity prune finetune transfer val export vis report pipeline: venv
	$(PY) -m slim $@ --config $(CONFIG)

bench: venv
	$(PY) -m pip install -q -e .[bench]
	$(PY) -m benchmarks.run_bench --config $(CONFIG)

# the hard benchmark (configs/hard.yaml, BENCHMARKS.md "hard"): baseline and sparsity training, then the sections
# that compare pruned models with the equal-epoch controls; about 110 minutes on 2 CPU cores
# HARD=hard_gpu: the same on a GPU with yolov8s at 640 px (add overhead to HARD_SECTIONS for the GPU's figure)
HARD ?= hard
HARD_SECTIONS ?= convergence sweep recovery frontier
bench-hard: venv
	$(PY) -m pip install -q -e .[bench]
	$(PY) -m slim train --config $(HARD)
	$(PY) -m slim sparsity --config $(HARD)
	$(PY) -m benchmarks.run_bench --config $(HARD) $(addprefix --only ,$(HARD_SECTIONS))

test: venv
	$(PY) -m pytest -q

# the fast lane: everything but the end-to-end tests (trainings, installs, CLI subprocesses); about a minute and a half
test-fast: venv
	$(PY) -m pytest -q -m "not slow"

# the demo's outputs only (configs/default.yaml: runs/demo, and the Torch-Pruning comparison's runs/demo_vs_tp);
# other experiments under runs/ and the generated demo images (runs/demo_data, an input) stay
clean:
	rm -rf runs/demo runs/demo_vs_tp

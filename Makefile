# slim: every stage of the pipeline as a make target. `make pipeline` runs them all on the demo data.
CONFIG ?= configs/default.yaml
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: pipeline test venv data train sparsity prune finetune transfer val export vis report bench clean

venv: $(STAMP)

$(STAMP): setup.cfg setup.py
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch and torchvision as a matching pair (see README: other pairs fail to import torchvision ops)
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1 || $(PY) -m pip install -q torch torchvision
	$(PY) -m pip install -q -e .[test]
	touch $(STAMP)

# stage target -> its script (scripts/<script>.py --config $(CONFIG))
SCRIPT_data := make_demo_data
SCRIPT_train := train
SCRIPT_sparsity := train_sparsity
SCRIPT_prune := prune
SCRIPT_finetune := finetune
SCRIPT_transfer := transfer
SCRIPT_val := val
SCRIPT_export := export
SCRIPT_vis := vis_bn
SCRIPT_report := report
SCRIPT_pipeline := pipeline

data train sparsity prune finetune transfer val export vis report pipeline: venv
	$(PY) scripts/$(SCRIPT_$@).py --config $(CONFIG)

bench: venv
	$(PY) -m pip install -q -e .[bench]
	$(PY) scripts/bench.py --config $(CONFIG)

test: venv
	$(PY) -m pytest -q

# the demo's outputs only (configs/default.yaml: runs/demo, and the Torch-Pruning comparison's runs/demo_vs_tp);
# other experiments under runs/ and the generated demo images (runs/demo_data, an input) stay
clean:
	rm -rf runs/demo runs/demo_vs_tp

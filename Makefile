# slim: every stage of the pipeline as a make target. `make pipeline` runs them all on the demo data.
CONFIG ?= configs/default.yaml
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: pipeline test venv data train sparsity prune finetune val export vis report bench clean

venv: $(STAMP)

$(STAMP): setup.cfg setup.py
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch and torchvision as a matching pair (see README: other pairs fail to import torchvision ops)
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1 || $(PY) -m pip install -q torch torchvision
	$(PY) -m pip install -q -e .[test]
	touch $(STAMP)

data: venv
	$(PY) scripts/make_demo_data.py --config $(CONFIG)

train: venv
	$(PY) scripts/train.py --config $(CONFIG)

sparsity: venv
	$(PY) scripts/train_sparsity.py --config $(CONFIG)

prune: venv
	$(PY) scripts/prune.py --config $(CONFIG)

finetune: venv
	$(PY) scripts/finetune.py --config $(CONFIG)

val: venv
	$(PY) scripts/val.py --config $(CONFIG)

export: venv
	$(PY) scripts/export.py --config $(CONFIG)

vis: venv
	$(PY) scripts/vis_bn.py --config $(CONFIG)

report: venv
	$(PY) scripts/report.py --config $(CONFIG)

pipeline: venv
	$(PY) scripts/pipeline.py --config $(CONFIG)

bench: venv
	$(PY) -m pip install -q -e .[bench]
	$(PY) scripts/bench.py --config $(CONFIG)

test: venv
	$(PY) -m pytest -q

clean:
	rm -rf runs

#!/usr/bin/env bash
# Why neither sparsity method reaches the targets (BENCHMARKS.md, "Why neither method reaches the targets"): the
# controls beside benchmarks/targeted_finetuned.sh's arms, from the same baseline, pruned to the same budgets.
#   nosparse: the baseline pruned straight at the budget (no sparsity training), finetuned the sparsity + finetune
#             epochs: what the sparsity epochs buy once finetuning is done;
#   gentle:   targeted sparsity with AdamW at the baseline's final learning rate (lr0 * lrf) instead of its lr0 (a
#             warm restart), then the same finetune: what the restart costs;
#   scratch:  the pruned architecture with random weights, trained with the baseline's own recipe (SCRATCH, the
#             train section's settings as finetune.* overrides): what the architecture reaches at all;
#   l1arch:   l1's sparse model pruned at the budget with the baseline's weights in the channels it keeps
#             (`slim prune --weights-from`; needs run_targeted's runs/<name>-l1 first), finetuned like nosparse: what
#             l1's choice of channels is worth without what its sparsity epochs did to the weights;
#   l1long:   l1's own pruned model (benchmarks/targeted_finetuned.sh's runs/<name>-l1-ft-<budget>) finetuned as
#             long as l1arch: l1arch's control for finetune length;
#   denselong: the baseline trained as long as l1arch and l1long in all (sparsity + sparsity + finetune epochs):
#             their dense control (once, not per budget).
#   bash benchmarks/targeted_controls.sh configs/converged.yaml converged 8 10 0.4 0.25 0.15
# ARMS="nosparse gentle scratch" (default) picks arms; SCRATCH_BUDGETS (default: all) the budgets scratch trains.
# Prints one JSON line per arm and budget.
set -euo pipefail
config=$1 name=$2 sparsity_epochs=$3 finetune_epochs=$4
shift 4
budgets=() extra=()
for arg in "$@"; do [[ $arg == *=* ]] && extra+=("$arg") || budgets+=("$arg"); done
slim="python -m slim"
runs=runs
baseline=${BASELINE:-$runs/$name/train/weights/best.pt}
arms=${ARMS:-nosparse gentle scratch}  # l1arch, l1long, denselong on request
scratch_budgets=${SCRATCH_BUDGETS:-${budgets[*]}}
gentle_lr=${GENTLE_LR:-0.0003}
scratch=${SCRATCH:-finetune.epochs=60 finetune.lr0=0.003 finetune.lrf=0.1 finetune.close_mosaic=6}
budget_args() { echo prune.ratio=null prune.target_gflops=$1; }

finetuned() {  # run, source weights, finetune overrides...: finetune (once) and validate
  local run=$1 source=$2
  shift 2
  [ -f $runs/$run/finetune/weights/best.pt ] || $slim finetune --config $config name=$run --weights $source \
    "$@" "${extra[@]}"
  $slim val --config $config name=$run --weights $runs/$run/finetune/weights/best.pt --tag finetuned --exist-ok \
    "${extra[@]}" >/dev/null
}

for budget in "${budgets[@]}"; do
  if [[ " $arms " == *" nosparse "* ]]; then
    run=$name-nosparse-$budget
    $slim prune --config $config name=$run --weights $baseline $(budget_args $budget) --exist-ok "${extra[@]}" >/dev/null
    finetuned $run $runs/$run/prune/pruned.pt finetune.epochs=$((sparsity_epochs + finetune_epochs))
  fi
  if [[ " $arms " == *" gentle "* ]]; then
    run=$name-gentle-$budget
    [ -f $runs/$run/sparsity/weights/last.pt ] || $slim sparsity --config $config name=$run --weights $baseline \
      $(budget_args $budget) sparsity.method=targeted sparsity.inherit_optimizer=false sparsity.optimizer=AdamW \
      sparsity.lr0=$gentle_lr sparsity.epochs=$sparsity_epochs "${extra[@]}"
    $slim prune --config $config name=$run --weights $runs/$run/sparsity/weights/last.pt $(budget_args $budget) \
      --exist-ok "${extra[@]}" >/dev/null
    finetuned $run $runs/$run/prune/pruned.pt finetune.epochs=$finetune_epochs
  fi
  if [[ " $arms " == *" scratch "* && " $scratch_budgets " == *" $budget "* ]]; then
    run=$name-scratch-$budget
    $slim prune --config $config name=$run --weights $baseline $(budget_args $budget) --exist-ok "${extra[@]}" >/dev/null
    [ -f $runs/$run/random.pt ] || python -m benchmarks.reinit $runs/$run/prune/pruned.pt $runs/$run/random.pt
    finetuned $run $runs/$run/random.pt $scratch
  fi
  if [[ " $arms " == *" l1arch "* ]]; then
    run=$name-l1arch-$budget
    $slim prune --config $config name=$run --weights $runs/$name-l1/sparsity/weights/last.pt --weights-from $baseline \
      $(budget_args $budget) --exist-ok "${extra[@]}" >/dev/null
    finetuned $run $runs/$run/prune/pruned.pt finetune.epochs=$((sparsity_epochs + finetune_epochs))
  fi
  if [[ " $arms " == *" l1long "* ]]; then
    run=$name-l1-ft$((sparsity_epochs + finetune_epochs))-$budget
    finetuned $run $runs/$name-l1-ft-$budget/prune/pruned.pt finetune.epochs=$((sparsity_epochs + finetune_epochs))
  fi
done
dense=$name-dense-$((2 * sparsity_epochs + finetune_epochs))
if [[ " $arms " == *" denselong "* ]]; then
  [ -f $runs/$dense/finetune/weights/best.pt ] || $slim finetune --config $config name=$dense --weights $baseline \
    finetune.epochs=$((2 * sparsity_epochs + finetune_epochs)) "${extra[@]}"
  $slim val --config $config name=$dense --weights $runs/$dense/finetune/weights/best.pt --tag dense --exist-ok \
    "${extra[@]}" >/dev/null
fi
python - "$name" "$dense" $((sparsity_epochs + finetune_epochs)) "${budgets[@]}" <<'PY'
import json, pathlib, sys
name, dense, long, budgets = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
path = pathlib.Path(f"runs/{dense}/val/dense.json")
if path.exists():
    print(json.dumps({"arm": "denselong", "mAP50_95": round(json.loads(path.read_text())["mAP50_95"], 4)}))
for b in budgets:
    for arm in ("nosparse", "gentle", "scratch", "l1arch", f"l1-ft{long}"):
        path = pathlib.Path(f"runs/{name}-{arm}-{b}/val/finetuned.json")
        if path.exists():
            v = json.loads(path.read_text())
            print(json.dumps({"arm": arm, "budget": float(b), "mAP50_95": round(v["mAP50_95"], 4), "gflops": v["gflops"]}))
PY

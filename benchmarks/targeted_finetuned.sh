#!/usr/bin/env bash
# Targeted vs l1 after finetuning, against the equal-epoch dense control (BENCHMARKS.md, "Targeted vs L1 sparsity").
# Run after `python -m benchmarks.run_targeted --config C --target-gflops B` for each budget B (it leaves the sparse
# runs in runs/<name>-l1 and runs/<name>-targeted-<B>). Every arm is finetuned with the config's finetune section;
# the dense control is the baseline trained for the sparsity + finetune epochs. Prints one JSON line per arm.
#   bash benchmarks/targeted_finetuned.sh configs/converged.yaml converged 8 10 0.4 0.25 0.15
# Another seed, from the same baseline: run_targeted with `--weights BASELINE name=N seed=S`, then
#   BASELINE=runs/converged/train/weights/best.pt bash benchmarks/targeted_finetuned.sh C N 8 10 0.4 ... seed=S
# (trailing key=value arguments go to every slim command).
set -euo pipefail
config=$1 name=$2 sparsity_epochs=$3 finetune_epochs=$4
shift 4
budgets=() extra=()
for arg in "$@"; do [[ $arg == *=* ]] && extra+=("$arg") || budgets+=("$arg"); done
set -- "${budgets[@]}"
slim="python -m slim"
runs=runs
baseline=${BASELINE:-$runs/$name/train/weights/best.pt}
dense=$name-dense-$((sparsity_epochs + finetune_epochs))
[ -f $runs/$dense/finetune/weights/best.pt ] || $slim finetune --config $config name=$dense \
  --weights $baseline finetune.epochs=$((sparsity_epochs + finetune_epochs)) "${extra[@]}"
$slim val --config $config name=$dense --weights $runs/$dense/finetune/weights/best.pt --tag dense --exist-ok \
  "${extra[@]}" >/dev/null
for budget in "$@"; do
  l1=$name-l1-ft-$budget targeted=$name-targeted-$budget
  $slim prune --config $config name=$l1 --weights $runs/$name-l1/sparsity/weights/last.pt \
    prune.ratio=null prune.target_gflops=$budget --exist-ok "${extra[@]}" >/dev/null
  for run in $l1 $targeted; do
    [ -f $runs/$run/finetune/weights/best.pt ] || $slim finetune --config $config name=$run finetune.epochs=$finetune_epochs \
      --weights $runs/$run/prune/pruned.pt "${extra[@]}"
    $slim val --config $config name=$run --weights $runs/$run/finetune/weights/best.pt --tag finetuned --exist-ok \
      "${extra[@]}" >/dev/null
  done
done
python - "$name" "$dense" "$@" <<'PY'
import json, sys
name, dense, budgets = sys.argv[1], sys.argv[2], sys.argv[3:]
control = json.load(open(f"runs/{dense}/val/dense.json"))["mAP50_95"]
print(json.dumps({"arm": "dense control", "mAP50_95": round(control, 4)}))
for b in budgets:
    for arm, run in (("l1", f"{name}-l1-ft-{b}"), ("targeted", f"{name}-targeted-{b}")):
        v = json.load(open(f"runs/{run}/val/finetuned.json"))
        print(json.dumps({"arm": arm, "budget": float(b), "mAP50_95": round(v["mAP50_95"], 4),
                          "of_control": round(v["mAP50_95"] / control, 4), "gflops": v["gflops"]}))
PY

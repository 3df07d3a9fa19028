#!/usr/bin/env bash
# The 2026-11-29 student sweep, run once on a lent GPU machine (docs/model-size.md).
# Every job is a plain `amphisbaena train`; they run side by side on one GPU. Inputs, from the repo root:
#   .gpu/teacher-mnist/      the MNIST teacher's fp16 variant at dd923fb (amphisbaena/models/mnist/fp16)
#   .gpu/data/{mnist,fashion-mnist}/  the training idx files (.xz or .gz), .gpu/data/qmnist/ the writer ids
# Usage: SWEEP=1|2 docs/reproduce/gpu-sweep.sh OUT_DIR DEADLINE_SECONDS   (packs whatever exists at the deadline)
set -u
out=${1:?OUT_DIR}; deadline=${2:-480}
start=$SECONDS
data=/tmp/amphisbaena-data; runs=/tmp/amphisbaena-runs
mkdir -p "$out" "$runs"
cp -r .gpu/data "$data"
python3 -c 'import lzma, pathlib, sys
for path in pathlib.Path(sys.argv[1]).rglob("*.xz"):
    path.with_suffix("").write_bytes(lzma.decompress(path.read_bytes())); path.unlink()' "$data"
recipes=amphisbaena/train/recipes
teacher=(--teacher .gpu/teacher-mnist)
job() {  # NAME DATASET RECIPE [extra train options]
  local name=$1 dataset=$2 recipe=$3; shift 3
  python3 -m amphisbaena train --device "${DEVICE:-cuda}" --dataset "$dataset" --data-dir "$data/$dataset" \
    --recipe "$recipes/$recipe.json" --run-dir "$runs/$name" --validate-every 10 "$@" ${SMOKE_ARGS:-} >"$runs/$name.log" 2>&1 &
}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null; python3 -c 'import torch; print(torch.__version__)'
if [ "${SWEEP:-1}" = 1 ]; then  # sizes and 20 against 60 epochs
  job mnist-m-t4-e20 mnist gpu-m-t4-e20 "${teacher[@]}"
  job mnist-m-t4-e60 mnist gpu-m-t4-e60 "${teacher[@]}"
  job mnist-m576-t4-e60 mnist gpu-m576-t4-e60 "${teacher[@]}"
  job mnist-m-t4-e60-final mnist gpu-m-t4-e60-final "${teacher[@]}"
  job mnist-m576-t4-e60-final mnist gpu-m576-t4-e60-final "${teacher[@]}"
  job fashion-m-e60 fashion-mnist gpu-fashion-m-e60
  job fashion-m-e60-final fashion-mnist gpu-fashion-m-e60-final
  job fashion-m576-e60 fashion-mnist gpu-fashion-m576-e60
  job fashion-m576-e60-final fashion-mnist gpu-fashion-m576-e60-final
else  # sweep 2: 150 epochs for the sizes sweep 1 chose
  job mnist-m-t4-e150 mnist gpu-m-t4-e150 "${teacher[@]}"
  job mnist-m-t4-e150-final mnist mnist-student "${teacher[@]}"
  job fashion-m-e150 fashion-mnist gpu-fashion-m-e150
  job fashion-m-e150-final fashion-mnist gpu-fashion-m-e150-final
  job fashion-m576-e150 fashion-mnist gpu-fashion-m576-e150
  job fashion-m576-e150-final fashion-mnist fashion-mnist-student
fi
while [ -n "$(jobs -r)" ] && [ $((SECONDS - start)) -lt "$deadline" ]; do
  sleep 10
  echo "$((SECONDS - start)) s: $(for h in "$runs"/*/history.jsonl; do printf '%s:%s ' "$(basename "$(dirname "$h")")" "$(wc -l <"$h")"; done)"
done
kill $(jobs -p) 2>/dev/null; sleep 2
python3 - "$runs" "$out" <<'PY'
"""Pack the runs: every history and log in one tar; each checkpoint without its optimizer state (what
export reads), two to a tar so each file stays under the transfer limit. An unfinished run is marked so."""
import json, sys, tarfile
from pathlib import Path
import torch
runs, out = Path(sys.argv[1]), Path(sys.argv[2])
with tarfile.open(out / "histories.tar", "w") as tar:
    for path in sorted(runs.glob("*.log")) + sorted(runs.glob("*/history.jsonl")):
        tar.add(path, arcname=str(path.relative_to(runs)))
summary, packed = {}, []
for run in sorted(p for p in runs.iterdir() if (p / "checkpoint.pt").is_file()):
    state = torch.load(run / "checkpoint.pt", weights_only=True, map_location="cpu")
    done = state["epoch"] == state["recipe"]["epochs"]
    state.pop("optimizer")
    summary[run.name] = {"epoch": state["epoch"], "val_accuracy": state["val_accuracy"], "val_size": state["val_size"], "finished": done}
    torch.save(state, run / "packed.pt")
    packed.append(run)
for index in range(0, len(packed), 2):
    with tarfile.open(out / f"checkpoints-{index // 2}.tar", "w") as tar:
        for run in packed[index : index + 2]:
            tar.add(run / "packed.pt", arcname=f"{run.name}/checkpoint.pt")
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps(summary, indent=2))
PY

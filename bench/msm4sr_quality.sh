#!/usr/bin/env bash
# MSM4SR on the example Scientific data: SASRec, MSM4SR (pre-train + fine-tune) and every ablation of the
# paper's table (w/o NIP, w/o CMCL, w/o Mixup, w/o Pre-train, E2E, -T, -V), test metrics in one table.
#
#   bench/msm4sr_quality.sh [OUT_DIR]          (default examples/out/msm4sr_quality)
#
# Settings live in examples/configs/msm4sr_{pretrain,finetune}.json (chosen on the validation split; the
# test split is evaluated once per model, at the end). Every fine-tuning run keeps its best epoch by
# validation NDCG@10 and stops after `patience` epochs without improvement. Steps whose output exists are
# skipped, so an interrupted run continues where it stopped. Environment: MMREC (the mmrec command),
# OMP_NUM_THREADS (default 1: the CPU is shared), JOBS (runs at once, default 1), SEED (default 2020),
# EXTRA_PRE / EXTRA_FT (more arguments for every pretrain / finetune call, e.g. "--set model.lam=0.1").
set -euo pipefail
# The final table also goes to docs/results/msm4sr.md (see write_results below), relative to the repository
# root found from this script's own location.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS=$ROOT/docs/results/msm4sr.md
source "$ROOT/bench/results.sh"  # settings VAR... and write_results TABLE [EXTRA]
COMMAND_LINE="$(settings OMP_NUM_THREADS JOBS SEED EXTRA_PRE EXTRA_FT MMREC)bench/$(basename "$0")$([ $# -eq 0 ] || printf ' %q' "$@")"
cd "$(dirname "$0")/.."
OUT=${1:-examples/out/msm4sr_quality}
MMREC=${MMREC:-.venv/bin/mmrec}
SEED=${SEED:-2020}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PRE_CFG=examples/configs/msm4sr_pretrain.json
FT_CFG=examples/configs/msm4sr_finetune.json
mkdir -p "$OUT"
DS=$OUT/scientific.safetensors
FE=$OUT/scientific_feats.safetensors   # text = CLIP ViT-B/32 text (feat1CLS), image = CLIP ViT-B/32 image (feat3CLS)

JOBS=${JOBS:-1}
run() { echo "+ $*" >&2; "$@"; }
spawn() {  # run "$@" in the background, at most JOBS at once; a failure stops the script at the next `finish`
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || exit 1; done
  "$@" &
}
finish() { while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || exit 1; done; }

[ -f "$DS" ] || run $MMREC prepare examples/scientific/Scientific -o "$DS" --features-out "$FE"

# --- pre-training: the full model and the pre-training ablations -------------------------------------------
pretrain() {  # name, extra args...
  local name=$1; shift
  [ -f "$OUT/pre_$name.safetensors" ] || run $MMREC pretrain msm4sr "$DS" --features "$FE" --config "$PRE_CFG" \
    --seed "$SEED" -o "$OUT/pre_$name.safetensors" ${EXTRA_PRE:-} "$@" 2> "$OUT/pre_$name.log"
}
spawn pretrain full
spawn pretrain no_nip --set model.nip=false
spawn pretrain no_cmcl --set model.cmcl=false
spawn pretrain no_mixup --set model.mixup=false
finish

# --- fine-tuning ----------------------------------------------------------------------------------------------
finetune() {  # name, model, extra args...
  local name=$1 model=$2; shift 2
  local cfg=()
  [ "$model" = msm4sr ] && cfg=(--features "$FE" --config "$FT_CFG" ${EXTRA_FT:-})
  [ -f "$OUT/ft_$name.safetensors" ] || run $MMREC finetune "$model" "$DS" "${cfg[@]}" --seed "$SEED" \
    -o "$OUT/ft_$name.safetensors" "$@" 2> "$OUT/ft_$name.log"
  local feats=()
  [ "$model" = msm4sr ] && feats=(--features "$FE")
  [ -f "$OUT/test_$name.json" ] || run $MMREC eval "$OUT/ft_$name.safetensors" "$DS" "${feats[@]}" --split test \
    -o "$OUT/test_$name.json" 2>> "$OUT/ft_$name.log"
}
spawn finetune sasrec sasrec --patience 10
spawn finetune msm4sr msm4sr --init "$OUT/pre_full.safetensors"
spawn finetune no_nip msm4sr --init "$OUT/pre_no_nip.safetensors"
spawn finetune no_cmcl msm4sr --init "$OUT/pre_no_cmcl.safetensors"
spawn finetune no_mixup msm4sr --init "$OUT/pre_no_mixup.safetensors"
spawn finetune no_pretrain msm4sr
spawn finetune e2e msm4sr --set model.e2e=true
spawn finetune text_only msm4sr --init "$OUT/pre_full.safetensors" --set model.modalities=text
spawn finetune image_only msm4sr --init "$OUT/pre_full.safetensors" --set model.modalities=image
finish

PROTOCOL="the bundled Scientific data (examples/scientific), chronological leave-one-out, full ranking over all items; CLIP ViT-B/32 text + image features; settings of $PRE_CFG and $FT_CFG${EXTRA_PRE:+, pretrain $EXTRA_PRE}${EXTRA_FT:+, finetune $EXTRA_FT}; seed $SEED; best epoch by validation NDCG@10; test evaluated once per model."
TABLE=$(mktemp)
trap 'rm -f "$TABLE"' EXIT
# --- the table ------------------------------------------------------------------------------------------------
.venv/bin/python - "$OUT" <<'EOF' | tee "$TABLE"
import json, sys
from pathlib import Path

from mmrec_cli.io import artifacts

out = Path(sys.argv[1])
rows = [("SASRec", "sasrec"), ("MSM4SR", "msm4sr"), ("MSM4SR w/o NIP", "no_nip"), ("MSM4SR w/o CMCL", "no_cmcl"),
        ("MSM4SR w/o Mixup", "no_mixup"), ("MSM4SR w/o Pre-train", "no_pretrain"), ("MSM4SR E2E", "e2e"),
        ("MSM4SR-T", "text_only"), ("MSM4SR-V", "image_only")]
cols = ["recall@5", "recall@10", "recall@20", "ndcg@5", "ndcg@10", "ndcg@20"]
print("| model | " + " | ".join(c.replace("recall", "R").replace("ndcg", "N") for c in cols) + " | valid N@10 | best epoch |")
print("|---" * (len(cols) + 3) + "|")
base = None
for label, name in rows:
    f = out / f"test_{name}.json"
    if not f.exists():
        print(f"| {label} | (missing) |")
        continue
    m = json.loads(f.read_text())["metrics"]
    meta = artifacts.read_meta(out / f"ft_{name}.safetensors")
    base = m["ndcg@10"] if name == "sasrec" else base
    print(f"| {label} | " + " | ".join(f"{m[c]:.4f}" for c in cols) + f" | {meta['valid'].get('ndcg@10', float('nan')):.4f} | {meta['best_epoch']} |")
if base:
    m = json.loads((out / "test_msm4sr.json").read_text())["metrics"]
    print(f"\nMSM4SR vs SASRec, test NDCG@10: {m['ndcg@10']:.4f} vs {base:.4f} ({100 * (m['ndcg@10'] / base - 1):+.1f} %)")
EOF
write_results "$TABLE"

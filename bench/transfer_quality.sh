#!/usr/bin/env bash
# Cross-domain transfer: pre-train on Amazon Musical Instruments (text only), fine-tune on the Scientific example data
# (text + image), against training from scratch on the same data, over several seeds, with paired tests, learning
# curves over shares of the target's users and cold-item slices. The table goes to docs/results/transfer.md.
#
#   bench/transfer_quality.sh [OUT_DIR]          (default examples/out/transfer)
#
# Needs ../shared/data/instruments beside the repository (INSTRUMENTS=DIR to point elsewhere). Every step's output is a
# file, and a step whose output exists is skipped, so an interrupted run continues where it stopped (delete a file to
# redo its step). Settings are the example configs (chosen on the Scientific validation split) and are the same for
# every row; the only choices made here, which MSM4SR pre-training source and which UniSRec transfer mode get a
# learning curve, are made on validation. The test split is read once per trained model. Environment: MMREC (the mmrec
# command), OMP_NUM_THREADS (default 1), JOBS (runs at once, default 1), SEEDS (fine-tuning seeds, default
# "2020 2021 2022"), FRACTIONS (shares of the target's users to train for the learning curves, default "0.05 0.1 0.25
# 0.5"; the table has these and the defaults, so that a run of one share keeps the others' rows),
# SOURCES (MSM4SR pre-training sources among sci, instr and both, default all three), PARTS (default "msm4sr curve
# missrec unisrec unisrec-curve"; a curve needs its model's full-data rows first), CARRY=1 (rows and sections this
# OUT_DIR has no runs for are taken from the current docs/results/transfer.md, marked with the commit they were
# measured at: for a run of some PARTS into a new OUT_DIR).
# Edit this file only by replacing it (write a copy, then mv): bash reads a running script from its file as it goes.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS=$ROOT/docs/results/transfer.md
source "$ROOT/bench/results.sh"  # settings VAR... and write_results TABLE [EXTRA]
COMMAND_LINE="$(settings OMP_NUM_THREADS JOBS SEEDS FRACTIONS SOURCES PARTS CARRY MMREC INSTRUMENTS)bench/$(basename "$0")$([ $# -eq 0 ] || printf ' %q' "$@")"
cd "$ROOT"
OUT=${1:-examples/out/transfer}
MMREC=${MMREC:-.venv/bin/mmrec}
PY=${PY:-.venv/bin/python}
INSTRUMENTS=${INSTRUMENTS:-$ROOT/../shared/data/instruments}
SEEDS=${SEEDS:-2020 2021 2022}
DEFAULT_FRACTIONS="0.05 0.1 0.25 0.5"
FRACTIONS=${FRACTIONS:-$DEFAULT_FRACTIONS}
PARTS=${PARTS:-msm4sr curve missrec unisrec unisrec-curve}
SOURCES=${SOURCES:-sci instr both}
JOBS=${JOBS:-1}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
CFG=examples/configs
mkdir -p "$OUT"

run() { echo "+ $*" >&2; "$@"; }
spawn() {  # run "$@" in the background, at most JOBS at once; a failure stops the script at the next `finish`
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || exit 1; done
  "$@" &
}
finish() { while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || exit 1; done; }
has() { [[ " $PARTS " == *" $1 "* ]]; }

# --- data: both domains encoded by the same text encoder (the embedded MiniLM); Scientific keeps its CLIP images ------
SCI=$OUT/sci.safetensors SCI_F=$OUT/sci_feats.safetensors
INS=$OUT/instr.safetensors INS_F=$OUT/instr_feats.safetensors
[ -f "$SCI" ] || run $MMREC prepare examples/scientific/Scientific -o "$SCI" --items-out "$OUT/sci_items.jsonl"
[ -f "$SCI_F" ] || run $MMREC extract "$OUT/sci_items.jsonl" --text bert --precision fp32 --import image=examples/scientific/Scientific.feat3CLS -o "$SCI_F"
[ -f "$INS" ] || run $MMREC prepare "$INSTRUMENTS/users.tsv" --format sequences --items "$INSTRUMENTS/items.tsv" -o "$INS" --items-out "$OUT/instr_items.jsonl"
[ -f "$INS_F" ] || run $MMREC extract "$OUT/instr_items.jsonl" --text bert --precision fp32 -o "$INS_F"

# train NAME DS CMD...: one model (skipped when done), then its test metrics with slices and per-user rankings.
train() {
  local name=$1 ds=$2; shift 2
  local arg
  for arg in "$@"; do  # a pre-trained model that another job is still writing: wait for it
    if [[ "$arg" == "$OUT"/pre_*.safetensors ]]; then
      while [ ! -f "$arg" ]; do
        sleep 10
        pgrep -f -- "-o $arg" > /dev/null || sleep 20  # not (or no longer) being written: give it a last chance
        pgrep -f -- "-o $arg" > /dev/null || [ -f "$arg" ] || { echo "$arg was not written; see its .log" >&2; return 1; }
      done
    fi
  done
  [ -f "$OUT/$name.safetensors" ] || run "$@" -o "$OUT/$name.safetensors" --resume 2>> "$OUT/$name.log"
  local feats=()
  [[ "$name" == sasrec* ]] || feats=(--features "$SCI_F")
  [ -f "$OUT/$name.test.json" ] || run $MMREC eval "$OUT/$name.safetensors" "$ds" "${feats[@]}" --split test --slice \
    --rankings "$OUT/$name.rankings.jsonl" -o "$OUT/$name.test.json" 2>> "$OUT/$name.log"
}
pretrain() {  # NAME CMD...
  local name=$1; shift
  [ -f "$OUT/$name.safetensors" ] || run "$@" -o "$OUT/$name.safetensors" --resume 2>> "$OUT/$name.log"
}

# --- MSM4SR: scratch, pre-trained in-domain, on Instruments, on both; each fine-tuned on Scientific -------------------
MSM_FT=(--features "$SCI_F" --config $CFG/msm4sr_finetune.json)
if has msm4sr; then
  # Runs start in this order as job slots free; a fine-tuning run waits for its pre-trained model.
  [[ " $SOURCES " != *" sci "* ]] || spawn pretrain pre_msm4sr_sci $MMREC pretrain msm4sr "$SCI" --features "$SCI_F" --config $CFG/msm4sr_pretrain.json --seed 2020
  [[ " $SOURCES " != *" instr "* ]] || spawn pretrain pre_msm4sr_instr $MMREC pretrain msm4sr "$INS" --features "$INS_F" --config $CFG/msm4sr_pretrain.json --seed 2020
  for seed in $SEEDS; do
    spawn train "sasrec_s$seed" "$SCI" $MMREC finetune sasrec "$SCI" --config $CFG/sasrec.json --seed "$seed"
    spawn train "msm4sr_scratch_s$seed" "$SCI" $MMREC finetune msm4sr "$SCI" "${MSM_FT[@]}" --seed "$seed"
  done
  [[ " $SOURCES " != *" both "* ]] || spawn pretrain pre_msm4sr_both $MMREC pretrain msm4sr "$INS" "$SCI" --features "$INS_F" \
    --features "$SCI_F" --config $CFG/msm4sr_pretrain.json --seed 2020
  for seed in $SEEDS; do
    for src in $SOURCES; do
      spawn train "msm4sr_${src}_s$seed" "$SCI" $MMREC finetune msm4sr "$SCI" "${MSM_FT[@]}" --init "$OUT/pre_msm4sr_$src.safetensors" --seed "$seed"
    done
  done
  finish
fi

# --- learning curves: the model pre-trained vs from scratch, per share of the target's users ---------------------------
# A share s of the users gives about s times the updates per epoch: validate every round(1/s) epochs and scale the
# epoch limit alike, so that every share gets the full data's updates between validations and its patience.
curve_set() {  # CONFIG FRACTION: the --set flags of a share
  local every epochs
  every=$($PY -c "import sys; print(max(1, round(1 / float(sys.argv[1]))))" "$2")
  epochs=$($PY -c "import sys, json; print(json.load(open(sys.argv[1]))['train']['epochs'] * int(sys.argv[2]))" "$1" "$every")
  echo "--set train.eval_every=$every --set train.epochs=$epochs"
}
subsampled() {  # FRACTION SEED: the target's data with that share of its users trained on (made once)
  local ds=$OUT/sci_u$1_s$2.safetensors
  [ -f "$ds" ] || run $MMREC subsample "$SCI" --keep-users "$1" --seed "$2" -o "$ds" >&2
  echo "$ds"
}
best_on_valid() {  # PREFIX CANDIDATE...: the candidate whose full-data runs PREFIX_CANDIDATE_sSEED have the best mean valid NDCG@10
  $PY - "$OUT" "$SEEDS" "$@" <<'EOF'
import sys
from pathlib import Path
from mmrec_cli.io import artifacts
out, seeds, prefix, cands = Path(sys.argv[1]), sys.argv[2].split(), sys.argv[3], sys.argv[4:]
def valid(c):
    files = [out / f"{prefix}_{c}_s{s}.safetensors" for s in seeds]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        sys.exit(f"the learning curve chooses its setting on validation: {missing[0]} is missing; train the full-data rows first")
    return sum(artifacts.read_meta(f)["valid"]["ndcg@10"] for f in files) / len(files)
print(cands[0] if len(cands) == 1 else max(cands, key=valid))
EOF
}

# MSM4SR: the cross-domain pre-training source (instr or both) with the best mean validation NDCG@10
if has curve; then
  cands=()
  for src in instr both; do [[ " $SOURCES " != *" $src "* ]] || cands+=("$src"); done
  [ ${#cands[@]} -gt 0 ] || { echo "the learning curve is of a cross-domain source: SOURCES needs instr or both" >&2; exit 1; }
  BEST=$(best_on_valid msm4sr "${cands[@]}")
  [ -f "$OUT/pre_msm4sr_$BEST.safetensors" ] || { echo "pre-train first: PARTS=msm4sr SOURCES=$BEST" >&2; exit 1; }
  echo "learning curve: MSM4SR pre-trained on '$BEST' vs scratch (the cross-domain source; of several, the best by mean validation NDCG@10)" >&2
  echo "$BEST" > "$OUT/curve_source.txt"
  for frac in $FRACTIONS; do
    read -ra SHARE <<< "$(curve_set $CFG/msm4sr_finetune.json "$frac")"
    for seed in $SEEDS; do
      ds=$(subsampled "$frac" "$seed")
      spawn train "curve_scratch_u${frac}_s$seed" "$ds" $MMREC finetune msm4sr "$ds" "${MSM_FT[@]}" "${SHARE[@]}" --seed "$seed"
      spawn train "curve_${BEST}_u${frac}_s$seed" "$ds" $MMREC finetune msm4sr "$ds" "${MSM_FT[@]}" "${SHARE[@]}" \
        --init "$OUT/pre_msm4sr_$BEST.safetensors" --seed "$seed"
    done
  done
  finish
fi

# --- MISSRec: scratch (IDs, every parameter trained); pre-trained on Instruments, then transferred ---------------------
if has missrec; then
  # The scratch runs need no pre-training: they go first; a transfer run waits for the pre-trained model.
  for seed in $SEEDS; do
    spawn train "missrec_scratch_s$seed" "$SCI" $MMREC finetune missrec "$SCI" --features "$SCI_F" \
      --config $CFG/missrec_finetune.json --seed "$seed" --set model.full=true
  done
  # recompute=false: the same bits as recomputing, 1.7x faster an epoch here, 4.4 GB instead of 2.7 GB (docs/models/missrec.md)
  spawn pretrain pre_missrec_instr $MMREC pretrain missrec "$INS" --features "$INS_F" --config $CFG/missrec_pretrain.json --seed 2020 \
    --set model.recompute=false
  for seed in $SEEDS; do
    MR=(--features "$SCI_F" --config $CFG/missrec_finetune.json --seed "$seed")
    spawn train "missrec_inductive_s$seed" "$SCI" $MMREC transfer "$OUT/pre_missrec_instr.safetensors" "$SCI" "${MR[@]}" --mode inductive
    spawn train "missrec_transductive_s$seed" "$SCI" $MMREC transfer "$OUT/pre_missrec_instr.safetensors" "$SCI" "${MR[@]}" --mode transductive
    # the inductive transfer with the pre-trained transformer fine-tuned too, not frozen
    spawn train "missrec_inductive_full_s$seed" "$SCI" $MMREC transfer "$OUT/pre_missrec_instr.safetensors" "$SCI" "${MR[@]}" --mode inductive \
      --set model.full=true
  done
  spawn train missrec_zeroshot "$SCI" $MMREC transfer "$OUT/pre_missrec_instr.safetensors" "$SCI" --features "$SCI_F" --mode inductive --epochs 0
  finish
fi

# --- UniSRec (the text baseline): scratch (IDs + text); pre-trained on Instruments, then transferred -----------------
if has unisrec; then
  # UniSRec pre-trains on a second, word-dropped encoding of the text (its public code's .feat2CLS)
  INS_W=$OUT/instr_feats_wd.safetensors
  [ -f "$INS_W" ] || run $MMREC extract "$OUT/instr_items.jsonl" --text bert --precision fp32 --word-drop 0.15 -o "$INS_W"
  spawn pretrain pre_unisrec_instr $MMREC pretrain unisrec "$INS" --features "$INS_W" --config $CFG/unisrec_pretrain.json --seed 2020
  for seed in $SEEDS; do
    UR=(--features "$SCI_F" --config $CFG/unisrec.json --seed "$seed")
    spawn train "unisrec_scratch_s$seed" "$SCI" $MMREC finetune unisrec "$SCI" "${UR[@]}"
    spawn train "unisrec_transductive_s$seed" "$SCI" $MMREC transfer "$OUT/pre_unisrec_instr.safetensors" "$SCI" "${UR[@]}" --mode transductive
    spawn train "unisrec_inductive_s$seed" "$SCI" $MMREC transfer "$OUT/pre_unisrec_instr.safetensors" "$SCI" "${UR[@]}" --mode inductive
  done
  spawn train unisrec_zeroshot "$SCI" $MMREC transfer "$OUT/pre_unisrec_instr.safetensors" "$SCI" --features "$SCI_F" --mode inductive --epochs 0
  finish
fi

# UniSRec: pre-trained on Instruments and transferred in the mode (inductive or transductive) with the best mean
# validation NDCG@10 on the full data
if has unisrec-curve; then
  MODE=$(best_on_valid unisrec inductive transductive)
  [ -f "$OUT/pre_unisrec_instr.safetensors" ] || { echo "pre-train first: PARTS=unisrec" >&2; exit 1; }
  echo "learning curve: UniSRec transferred from Instruments ($MODE, the better mode by mean validation NDCG@10) vs scratch" >&2
  echo "$MODE" > "$OUT/curve_unisrec_mode.txt"
  for frac in $FRACTIONS; do
    read -ra SHARE <<< "$(curve_set $CFG/unisrec.json "$frac")"
    for seed in $SEEDS; do
      ds=$(subsampled "$frac" "$seed")
      UR=(--features "$SCI_F" --config $CFG/unisrec.json "${SHARE[@]}" --seed "$seed")
      spawn train "curve_unisrec_scratch_u${frac}_s$seed" "$ds" $MMREC finetune unisrec "$ds" "${UR[@]}"
      spawn train "curve_unisrec_${MODE}_u${frac}_s$seed" "$ds" $MMREC transfer "$OUT/pre_unisrec_instr.safetensors" "$ds" "${UR[@]}" --mode "$MODE"
    done
  done
  finish
fi

# --- the table -----------------------------------------------------------------------------------------------------
PROTOCOL="target: the bundled Scientific data (2,928 users, 1,585 items; chronological leave-one-out; full ranking over all items, train items of the user not masked); source: Amazon Musical Instruments 2018 (10,000 users, 20,618 items, titles only; no item overlap). Both domains' text encoded by the embedded all-MiniLM-L6-v2 (384-d, fp32 on every CPU); Scientific's images are the provided CLIP ViT-B/32 vectors. Settings: examples/configs (msm4sr_pretrain/msm4sr_finetune, missrec_pretrain/missrec_finetune, unisrec_pretrain/unisrec, sasrec), the same for every row; each pre-training run once (seed 2020); fine-tuning seeds: $SEEDS; best epoch by validation NDCG@10; test read once per model. Paired tests: two-sided t-test and Wilcoxon signed-rank over users, per seed (the seed's runs share their users) and on the per-user mean over seeds, against the row named in 'vs'. Slices: the test target's number of train interactions (unseen = 0, cold = 1-5). Learning curve: the share of Scientific users whose train items are trained on; every share is evaluated on all 2,928 test users; a share s is validated every round(1/s) epochs with its epoch limit scaled alike, so that every share gets about the full data's number of updates between validations and before early stopping."
TABLE=$(mktemp)
trap 'rm -f "$TABLE"' EXIT
# shellcheck disable=SC2046  # one share per word
PREVIOUS=()
[ "${CARRY:-0}" = 0 ] || [ ! -f "$RESULTS" ] || PREVIOUS=(--previous "$RESULTS")
$PY bench/transfer_table.py "${PREVIOUS[@]}" "$OUT" $SEEDS -- $(printf '%s\n' $DEFAULT_FRACTIONS $FRACTIONS | sort -gu) | tee "$TABLE"
write_results "$TABLE"

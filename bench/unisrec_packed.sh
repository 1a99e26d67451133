#!/usr/bin/env bash
# UniSRec pre-trained on Instruments with one example per prefix (its public code) or packed (model.packed=true: each
# window read once, every position an example), each transferred to the Scientific example data, inductive and
# transductive, over seeds, with paired tests. The table goes to docs/results/unisrec_packed.md.
#
#   bench/unisrec_packed.sh [OUT_DIR]          (default examples/out/transfer)
#
# OUT_DIR is bench/transfer_quality.sh's: the data, the per-prefix pre-trained model and its rows come from
# `PARTS=unisrec bench/transfer_quality.sh OUT_DIR`; this script adds pre_unisrec_packed_instr and
# unisrec_packed_{inductive,transductive}_sSEED beside them, with the same settings and seeds. A step whose output
# exists is skipped. Environment: MMREC, PY, OMP_NUM_THREADS (default 1), SEEDS (default "2020 2021 2022").
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS=$ROOT/docs/results/unisrec_packed.md
source "$ROOT/bench/results.sh"
COMMAND_LINE="$(settings OMP_NUM_THREADS SEEDS MMREC)bench/$(basename "$0")$([ $# -eq 0 ] || printf ' %q' "$@")"
cd "$ROOT"
OUT=${1:-examples/out/transfer}
MMREC=${MMREC:-.venv/bin/mmrec}
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-2020 2021 2022}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
CFG=examples/configs
SCI=$OUT/sci.safetensors SCI_F=$OUT/sci_feats.safetensors INS=$OUT/instr.safetensors INS_W=$OUT/instr_feats_wd.safetensors
for f in "$SCI" "$SCI_F" "$INS" "$INS_W"; do
  [ -f "$f" ] || { echo "$f is missing: run PARTS=unisrec bench/transfer_quality.sh $OUT first" >&2; exit 1; }
done
run() { echo "+ $*" >&2; "$@"; }

PRE=$OUT/pre_unisrec_packed_instr.safetensors
[ -f "$PRE" ] || run $MMREC pretrain unisrec "$INS" --features "$INS_W" --config $CFG/unisrec_pretrain.json --set model.packed=true \
  --seed 2020 -o "$PRE" --resume 2>> "$OUT/pre_unisrec_packed_instr.log"
for seed in $SEEDS; do
  for mode in inductive transductive; do
    name=unisrec_packed_${mode}_s$seed
    [ -f "$OUT/$name.safetensors" ] || run $MMREC transfer "$PRE" "$SCI" --features "$SCI_F" --config $CFG/unisrec.json \
      --seed "$seed" --mode "$mode" -o "$OUT/$name.safetensors" --resume 2>> "$OUT/$name.log"
    [ -f "$OUT/$name.test.json" ] || run $MMREC eval "$OUT/$name.safetensors" "$SCI" --features "$SCI_F" --split test \
      --rankings "$OUT/$name.rankings.jsonl" -o "$OUT/$name.test.json" 2>> "$OUT/$name.log"
  done
done

PROTOCOL="source: Amazon Musical Instruments 2018 (10,000 users, 20,618 items, titles; the embedded MiniLM, with the word-dropped second encoding of \`extract --word-drop\`); target: the bundled Scientific data (2,928 users, 1,585 items, chronological leave-one-out, full ranking). Settings: examples/configs/unisrec_pretrain.json (pre-training, seed 2020; packed adds model.packed=true and nothing else) and unisrec.json (transfer), fine-tuning seeds: $SEEDS; best epoch by validation NDCG@10; test read once per model. Paired tests: two-sided t-test and Wilcoxon signed-rank over users on the per-user mean NDCG@10 over the seeds, against each row named in 'vs'. Epoch times: as each run logged them (the scripts' default of one thread; other jobs shared the 2 cores), so a guide only; the losses of the two differ in their negatives (packed leaves a window's own examples out), so they do not compare."
TABLE=$(mktemp)
trap 'rm -f "$TABLE"' EXIT
# shellcheck disable=SC2086  # one seed per word
$PY bench/unisrec_packed_table.py "$OUT" $SEEDS | tee "$TABLE"
write_results "$TABLE"

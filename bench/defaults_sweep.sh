#!/usr/bin/env bash
# Example settings chosen on two domains: one `mmrec sweep` per model and domain (the bundled Scientific data and
# Amazon Musical Instruments), the same grid on both, and a table of every setting's mean validation metric on each
# domain, its rank there, and its mean rank. The setting with the best mean rank is the one to prefer (ties: the
# better of the two ranks' worse one, then the higher mean of the two metrics relative to each domain's best), not
# the best on one domain. The table goes to docs/results/defaults.md.
#
#   bench/defaults_sweep.sh [OUT_DIR]           (default examples/out/defaults)
#
# Needs ../shared/data/instruments beside the repository (INSTRUMENTS=DIR to point elsewhere). Each sweep is `mmrec
# sweep` itself: it evaluates only its own chosen setting on its domain's test split, and an interrupted sweep
# continues where it stopped (rerun the script). The datasets, and the features of the models that read them (MiniLM
# text on both domains, Scientific's provided CLIP image vectors), are made as bench/transfer_quality.sh makes them
# (the same files when OUT_DIR/../transfer has them). Every run starts from scratch, with the model's example config
# (examples/configs/<model>.json, or <model>_finetune.json: MSM4SR and MISSRec are swept on their fine-tuning
# settings without pre-training) under the grid. Environment: MMREC, MODELS (default "sasrec gru4rec"), SEEDS
# (default "2020,2021"), DOMAINS (the sweeps to run, default "sci instr"; the table reads every finished one), JOBS
# (runs at once per sweep, default 1), OMP_NUM_THREADS (default 1), and per model a grid: GRID_SASREC, GRID_GRU4REC,
# GRID_BERT4REC, GRID_FMLPREC, GRID_UNISREC, GRID_MMMLP, GRID_MSM4SR, GRID_MISSREC ("key=v1,v2 key=v1,v2"), each
# around the example config's values (AlignRec is selected on its own split, in bench/mmmlp_alignrec_quality.sh); SET
# ("key=value ...", settings every run shares: SET=train.epochs=1 for a smoke run, into another OUT_DIR); RUN=0 writes
# the table from the sweeps already finished and runs none. Each finished sweep of the run's MODELS and DOMAINS is
# kept in the repository: its results.csv copied to KEEP/<model>_<domain>.csv (default docs/results/defaults/) with
# the command and commit in a .json beside it. The table (bench/defaults_table.py) is read from KEEP and has every
# model kept there, whichever MODELS a run names (a model with one domain kept gets that domain's table), so one
# model's sweep rewrites docs/results/defaults.md without dropping the others', and the table does not depend on
# OUT_DIR's run folders surviving. A smoke run (SET=...) rewrites the kept files of the sweeps it runs: give it
# KEEP=/tmp/kept, or restore docs/results afterwards.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS=$ROOT/docs/results/defaults.md
source "$ROOT/bench/results.sh"  # settings VAR... and write_results TABLE [EXTRA]
COMMAND_LINE="$(settings OMP_NUM_THREADS JOBS SEEDS MODELS DOMAINS SET RUN KEEP GRID_SASREC GRID_GRU4REC GRID_BERT4REC GRID_FMLPREC GRID_UNISREC GRID_MMMLP GRID_MSM4SR GRID_MISSREC MMREC INSTRUMENTS)bench/$(basename "$0")$([ $# -eq 0 ] || printf ' %q' "$@")"
KEEP=${KEEP:-$ROOT/docs/results/defaults}
cd "$ROOT"
OUT=${1:-examples/out/defaults}
MMREC=${MMREC:-.venv/bin/mmrec}
PY=${PY:-.venv/bin/python}
INSTRUMENTS=${INSTRUMENTS:-$ROOT/../shared/data/instruments}
MODELS=${MODELS:-sasrec gru4rec}
SEEDS=${SEEDS:-2020,2021}
DOMAINS=${DOMAINS:-sci instr}
JOBS=${JOBS:-1}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
GRID_SASREC=${GRID_SASREC:-model.dropout=0.2,0.5 train.lr=0.001,0.003}
GRID_UNISREC=${GRID_UNISREC:-model.dropout=0.2,0.5 train.lr=0.001,0.003}
GRID_MMMLP=${GRID_MMMLP:-model.dropout=0.3,0.5 train.lr=0.001,0.002}
GRID_GRU4REC=${GRID_GRU4REC:-model.dropout=0.1,0.3 train.lr=0.001,0.003}
GRID_BERT4REC=${GRID_BERT4REC:-model.mask_ratio=0.2,0.4 train.lr=0.001,0.003}
GRID_FMLPREC=${GRID_FMLPREC:-model.dropout=0.2,0.5 train.lr=0.001,0.003}
GRID_MSM4SR=${GRID_MSM4SR:-model.dropout=0.3,0.5 train.lr=0.001,0.003}
GRID_MISSREC=${GRID_MISSREC:-model.dropout=0.3,0.5 train.lr=0.001,0.003}
mkdir -p "$OUT"
run() { echo "+ $*" >&2; "$@"; }

# --- the two domains, as bench/transfer_quality.sh prepares them (reused when it already has) ----------------------
SCI=$OUT/sci.safetensors INS=$OUT/instr.safetensors
TRANSFER=$OUT/../transfer
if [ "${RUN:-1}" != 0 ]; then
  for pair in "$SCI:sci.safetensors" "$INS:instr.safetensors"; do
    target=${pair%%:*} name=${pair#*:}
    [ -f "$target" ] || [ ! -f "$TRANSFER/$name" ] || run cp "$TRANSFER/$name" "$target"
  done
  [ -f "$SCI" ] || run $MMREC prepare examples/scientific/Scientific -o "$SCI"
  [ -f "$INS" ] || run $MMREC prepare "$INSTRUMENTS/users.tsv" --format sequences --items "$INSTRUMENTS/items.tsv" -o "$INS"
fi

# --- the models: a grid each; those that read features get each domain's, as bench/transfer_quality.sh makes them --
for model in $MODELS; do
  var=GRID_${model^^}
  [ "$model" != alignrec ] || { echo "MODELS: alignrec is trained and selected on the ratio split (bench/mmmlp_alignrec_quality.sh), not here" >&2; exit 2; }
  [ -n "${!var+x}" ] || { echo "MODELS: no grid for '$model' (set $var=\"key=v1,v2 ...\")" >&2; exit 2; }
done
config_of() { [ -f "examples/configs/${1}_finetune.json" ] && echo "examples/configs/${1}_finetune.json" || echo "examples/configs/$1.json"; }
SCI_F=$OUT/sci_feats.safetensors INS_F=$OUT/instr_feats.safetensors
FEATURE_MODELS=$($PY -c 'import sys; from mmrec_cli import models; print(" ".join(m for m in sys.argv[1:] if models.get(m).modalities))' $MODELS)
if [ -n "$FEATURE_MODELS" ] && [ "${RUN:-1}" != 0 ]; then
  # Scientific: MiniLM text + the provided CLIP image vectors; Instruments has titles only, so text alone.
  for pair in "$SCI_F:sci_feats.safetensors" "$INS_F:instr_feats.safetensors"; do
    target=${pair%%:*} name=${pair#*:}
    [ -f "$target" ] || [ ! -f "$TRANSFER/$name" ] || run cp "$TRANSFER/$name" "$target"
  done
  [ -f "$SCI_F" ] || [[ " $DOMAINS " != *" sci "* ]] || { run $MMREC prepare examples/scientific/Scientific -o "$OUT/sci_items.safetensors" --items-out "$OUT/sci_items.jsonl" \
    && run $MMREC extract "$OUT/sci_items.jsonl" --text bert --precision fp32 --import image=examples/scientific/Scientific.feat3CLS -o "$SCI_F"; }
  [ -f "$INS_F" ] || [[ " $DOMAINS " != *" instr "* ]] || { run $MMREC prepare "$INSTRUMENTS/users.tsv" --format sequences --items "$INSTRUMENTS/items.tsv" \
    -o "$OUT/instr_items.safetensors" --items-out "$OUT/instr_items.jsonl" && run $MMREC extract "$OUT/instr_items.jsonl" --text bert --precision fp32 -o "$INS_F"; }
fi

# --- one sweep per model and domain --------------------------------------------------------------------------------
for model in $MODELS; do
  var=GRID_${model^^}
  grid=()
  for g in ${!var}; do grid+=(--grid "$g"); done
  for g in ${SET:-}; do grid+=(--set "$g"); done
  for domain in $DOMAINS; do
    [[ "$domain" =~ ^(sci|instr)$ ]] || { echo "DOMAINS: unknown domain '$domain' (sci, instr)" >&2; exit 2; }
    ds=$SCI feats=()
    [ "$domain" = sci ] || ds=$INS
    [[ " $FEATURE_MODELS " != *" $model "* ]] || { feats=(--features "$SCI_F"); [ "$domain" = sci ] || feats=(--features "$INS_F"); }
    [ -f "$OUT/${model}_$domain/results.csv" ] || [ "${RUN:-1}" = 0 ] || run $MMREC sweep "$model" "$ds" "${feats[@]}" \
      --config "$(config_of "$model")" "${grid[@]}" --seeds "$SEEDS" --jobs "$JOBS" -o "$OUT/${model}_$domain"
  done
done

# --- the table -----------------------------------------------------------------------------------------------------
PROTOCOL="domains: the bundled Scientific data (2,928 users, 1,585 items) and Amazon Musical Instruments 2018 (10,000 users, 20,618 items), each with mmrec's chronological leave-one-out split and full ranking over all items. Per model, one \`mmrec sweep\` per domain over the same grid around the model's example config (examples/configs/<model>.json, or <model>_finetune.json), from scratch; models that read features get the embedded all-MiniLM-L6-v2's text vectors (fp32 on every CPU) on both domains and Scientific's provided CLIP ViT-B/32 image vectors (Instruments has titles only); seeds $SEEDS${SET:+, with $SET for every run}; a setting's figure is its validation metric (the config's train.metric) averaged over the seeds. Rank 1 is a domain's best; the preferred setting has the best mean rank over the two domains (ties: the better worse rank, then the higher mean of the metric relative to each domain's best). Only validation figures choose; each sweep reads its own domain's test split once, for its own chosen setting (in OUT/<model>_<domain>/results.md)."
# the finished sweeps of this run's models and domains are kept in $KEEP (in the repository), the table is read from there
pairs=()
for model in $MODELS; do for domain in $DOMAINS; do pairs+=("$model:$domain"); done; done
"$PY" bench/defaults_table.py --keep "$OUT" "$KEEP" "\`$COMMAND_LINE\` at commit $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown), $(date -u +%Y-%m-%d)" "${pairs[@]}"
TABLE=$(mktemp)
trap 'rm -f "$TABLE"' EXIT
"$PY" bench/defaults_table.py "$KEEP" $MODELS | tee "$TABLE"
write_results "$TABLE"

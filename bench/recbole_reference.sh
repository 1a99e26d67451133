#!/usr/bin/env bash
# RecBole 1.2.1's reference figures for the ID-only baselines (SASRec, GRU4Rec, BERT4Rec) on mmrec's own split of
# the example Scientific data, next to mmrec's figures for the same models with the same settings.
#
#   bench/recbole_reference.sh                                   # everything; outputs under examples/out/recbole
#   EPOCHS=1 MODELS=gru4rec OUT=/tmp/recbole_smoke bench/recbole_reference.sh    # a smoke run
#
# 1. A virtualenv of its own, .venv-recbole/ (RECBOLE_VENV), with recbole==1.2.1, torch==2.13.0, numpy<2 and what
#    RecBole imports when it trains and evaluates these models; RecBole is installed without its declared
#    dependencies, which pull in Ray, thop, plotly, psutil and tabulate, used only by its hyper-parameter tuning, FLOPs
#    count and reports. pandas<3: pandas 3's copy-on-write turns RecBole's in-place fillna into a silent no-op.
# 2. `mmrec prepare examples/scientific`, then `mmrec export --format recbole`: RecBole's atomic .inter file and
#    the RecBole settings (NAME.yaml) under which its leave-one-out split holds out the very items mmrec's holds out.
# 3. Per model, RecBole through bench/recbole_run.py (run by .venv-recbole's Python; it never imports mmrec) with the
#    settings of examples/configs/MODEL.json mapped to RecBole's key names, and mmrec finetune + eval with the same
#    config: both with cross-entropy over all items, full ranking, selection on valid NDCG@10 (patience 10), seed
#    2020, the test split evaluated once at the best validation epoch.
# 4. The table of every model with outputs in OUT, printed and written to docs/results/baselines.md.
#
# MODELS (default "sasrec gru4rec bert4rec") picks the models; EPOCHS overrides the epoch limit of both tools (a
# smoke run: use another OUT, a run records its EPOCHS in OUT and refuses to mix). SEEDS="2020 2021 ..." runs each
# model at every seed in both tools instead (OUT default examples/out/recbole_seeds; files named ..._seed<S>) and
# writes docs/results/baselines_seeds.md: the runs per seed, their means and Welch's t-test over seeds, since where
# patience stops a run (BERT4Rec's most) is a draw that one seed cannot show. A step is skipped when its output
# exists (delete OUT to redo). Single-threaded by default (OMP_NUM_THREADS=1; the CPU is shared): the full settings
# take hours on a busy 2-core machine, RecBole's SASRec and BERT4Rec most.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS=$ROOT/docs/results/baselines.md
source "$ROOT/bench/results.sh"  # settings VAR..., write_results TABLE [EXTRA] and step OUTPUT CMD...
COMMAND_LINE="$(settings OMP_NUM_THREADS MODELS SEEDS EPOCHS OUT MMREC PY RECBOLE_VENV)bench/$(basename "$0")$([ $# -eq 0 ] || printf ' %q' "$@")"
cd "$ROOT"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
MMREC=${MMREC:-.venv/bin/mmrec}
PY=${PY:-.venv/bin/python}
VENV=${RECBOLE_VENV:-.venv-recbole}
SEEDS=${SEEDS:-}
OUT=${OUT:-examples/out/recbole${SEEDS:+_seeds}}
MODELS=${MODELS:-sasrec gru4rec bert4rec}
EPOCHS=${EPOCHS:-}
CONF=examples/configs
for m in $MODELS; do
  case $m in sasrec|gru4rec|bert4rec) ;; *) echo "MODELS: unknown model '$m' (sasrec, gru4rec, bert4rec)" >&2; exit 2;; esac
done
mkdir -p "$OUT"
# The epoch limit the outputs in OUT were made with: a smoke run's files must never pass for a full run's.
limit=${EPOCHS:-config}
if [ -e "$OUT/epochs" ] && [ "$(cat "$OUT/epochs")" != "$limit" ]; then
  echo "$OUT holds a run with EPOCHS=$(cat "$OUT/epochs") (config = the configs' own limits), not $limit; delete it or use another OUT" >&2
  exit 2
fi
echo "$limit" > "$OUT/epochs"


# ---- 1. RecBole's virtualenv (the marker file is written once everything imports)
if [ ! -e "$VENV/.recbole-1.2.1" ]; then
  echo "+ creating $VENV (recbole 1.2.1, torch 2.13.0)" >&2
  "${PYTHON:-python3}" -m venv "$VENV"
  # torch 2.13.0: pip takes the CPU build where its indexes offer one (PyPI's default Linux build also runs on a CPU).
  "$VENV/bin/pip" install --quiet 'torch==2.13.0' 'numpy<2' 'pandas<3' scipy scikit-learn pyyaml tqdm \
    'colorlog==4.7.2' 'colorama==0.4.4' texttable tensorboard
  "$VENV/bin/pip" install --quiet --no-deps 'recbole==1.2.1'
  "$VENV/bin/python" -c 'import torch, recbole.config, recbole.data, recbole.trainer, recbole.model.sequential_recommender'
  touch "$VENV/.recbole-1.2.1"
fi

# ---- 2. the data, and its RecBole export
DS=$OUT/ds.safetensors
YAML=$OUT/recbole/scientific/scientific.yaml
step "$DS" "$MMREC" prepare examples/scientific -o "$DS"
step "$YAML" "$MMREC" export "$DS" --format recbole -o "$OUT/recbole" --name scientific

# ---- 3s. with SEEDS: both tools at every seed, and the table over seeds (docs/results/baselines_seeds.md)
if [ -n "$SEEDS" ]; then
  RESULTS=$ROOT/docs/results/baselines_seeds.md
  epochs=()
  [ -n "$EPOCHS" ] && epochs=(--epochs "$EPOCHS")
  for m in $MODELS; do
    for s in $SEEDS; do
      step "$OUT/recbole_${m}_seed$s.json" "$VENV/bin/python" bench/recbole_run.py "$m" "$YAML" "$CONF/$m.json" "${epochs[@]}" --seed "$s" --resume -o "$OUT/recbole_${m}_seed$s.json"
      step "$OUT/mmrec_${m}_seed$s.safetensors" "$MMREC" finetune "$m" "$DS" --config "$CONF/$m.json" "${epochs[@]}" --seed "$s" -o "$OUT/mmrec_${m}_seed$s.safetensors"
      step "$OUT/mmrec_${m}_seed$s.test.json" "$MMREC" eval "$OUT/mmrec_${m}_seed$s.safetensors" "$DS" --split test --ks 10,20,50 -o "$OUT/mmrec_${m}_seed$s.test.json"
    done
  done
  PROTOCOL="as docs/results/baselines.md (the same split, settings and stopping rule: best epoch by validation NDCG@10, patience 10), at each of the seeds $SEEDS${EPOCHS:+, but at most $EPOCHS epoch(s) (a smoke run)}; RecBole's seed is its \`seed\` setting (\`init_seed\`: the initial weights, the batch order, the masks), mmrec's \`--seed\`. The two tools draw different random numbers, so a seed's two runs are not a pair: the means over seeds are compared, with Welch's t-test (two-sided, unequal variances) over the seeds' test figures. OMP_NUM_THREADS=$OMP_NUM_THREADS, on a shared machine."
  TABLE=$(mktemp)
  trap 'rm -f "$TABLE"' EXIT
  "$PY" bench/recbole_seeds_table.py "$OUT" $SEEDS -- $MODELS | tee "$TABLE"
  write_results "$TABLE"
  exit 0
fi

# ---- 3. RecBole and mmrec, model by model
epochs=()
[ -n "$EPOCHS" ] && epochs=(--epochs "$EPOCHS")
for m in $MODELS; do
  step "$OUT/recbole_$m.json" "$VENV/bin/python" bench/recbole_run.py "$m" "$YAML" "$CONF/$m.json" "${epochs[@]}" --resume -o "$OUT/recbole_$m.json"
  step "$OUT/mmrec_$m.safetensors" "$MMREC" finetune "$m" "$DS" --config "$CONF/$m.json" "${epochs[@]}" -o "$OUT/mmrec_$m.safetensors"
  step "$OUT/mmrec_$m.test.json" "$MMREC" eval "$OUT/mmrec_$m.safetensors" "$DS" --split test --ks 10,20,50 -o "$OUT/mmrec_$m.test.json"
done

# ---- 4. the table
PROTOCOL="the bundled Scientific data (examples/scientific: 2,928 users, 1,585 items, 19,712 interactions), mmrec's chronological leave-one-out split, exported with \`mmrec export --format recbole\` (RecBole: \`eval_args: {split: {LS: valid_and_test}, order: TO, group_by: user, mode: full}\`, no interaction filters, MAX_ITEM_LIST_LENGTH 50); full ranking over all items; cross-entropy over all items (RecBole: \`loss_type: CE\`, \`train_neg_sample_args: ~\`); the settings of $CONF/<model>.json in both tools (RecBole's key names as in mmrec_cli/config.py's RECBOLE_ALIASES)${EPOCHS:+, but at most $EPOCHS epoch(s) (EPOCHS=$EPOCHS: a smoke run, not reference figures)}; best epoch by validation NDCG@10, patience 10 (\`stopping_step\`), seed 2020 (RecBole: \`reproducibility: true\`); the test split evaluated once, at that epoch. RecBole 1.2.1 with torch 2.13.0 in .venv-recbole (bench/recbole_run.py: run_recbole's steps), mmrec in .venv; both on the CPU, OMP_NUM_THREADS=$OMP_NUM_THREADS. Batches: \`train_batch_size\` counts training prefixes in RecBole and in mmrec's GRU4Rec and BERT4Rec; mmrec's SASRec counts user sequences (a loss at every position), so at the same number its epoch takes fewer, larger steps. Seconds: wall time of each tool's commands (RecBole: the runner, data loading to test; mmrec: finetune + eval), on a shared machine. The table holds every model whose outputs are in $OUT, those of earlier runs of this script included (MODELS picks what a run trains; the command below is the latest run's). Each row is one run at one seed; BERT4Rec's depends on where patience 10 stops it (runs over seeds, and two with patience 30 that reach RecBole's figures, are in docs/models/bert4rec.md)."
TABLE=$(mktemp) CHECK=$(mktemp)
trap 'rm -f "$TABLE" "$CHECK"' EXIT
"$PY" - "$OUT" "$CHECK" sasrec gru4rec bert4rec <<'EOF' | tee "$TABLE"
import json, os, sys
import numpy as np
from mmrec_cli.data import dataset as D
from mmrec_cli.io import artifacts

out, check, models = sys.argv[1], sys.argv[2], sys.argv[3:]
names = {"sasrec": "SASRec", "gru4rec": "GRU4Rec", "bert4rec": "BERT4Rec"}
times = dict(l.rstrip("\n").split("\t") for l in open(f"{out}/times.tsv")) if os.path.exists(f"{out}/times.tsv") else {}
ds = D.load(f"{out}/ds.safetensors")
mine = {"users": ds.num_users, "items": ds.num_items, "interactions": int(np.asarray(ds.items).size)}
f = lambda x: "" if x is None else f"{x:.4f}"
secs = lambda *files: sum(int(times[n]) for n in files) if all(n in times for n in files) else None

def epoch_seconds(log: str) -> float | None:
    """mmrec's seconds per epoch (training and validation), from the training log beside the artifact."""
    if not os.path.exists(log):
        return None
    s = [r["seconds"] for r in map(json.loads, open(log)) if r.get("seconds") is not None]
    return sum(s) / len(s) if s else None

print("| model | tool | test Recall@10 | test NDCG@10 | test Recall@20 | test NDCG@20 | NDCG@10 vs RecBole | valid NDCG@10 | best epoch / epochs run | s/epoch | seconds |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
lines = []
for m in models:
    rb_path, mm_path = f"{out}/recbole_{m}.json", f"{out}/mmrec_{m}.test.json"
    rb = json.load(open(rb_path)) if os.path.exists(rb_path) else None
    if rb:
        t, d = rb["test"], rb["dataset"]
        s = secs(f"recbole_{m}.json")
        here = rb.get("epochs_this_process", rb["epochs_run"])  # a resumed run's seconds cover its own epochs only
        resumed = "" if rb.get("resumed_from_epoch") is None else f" (resumed after epoch {rb['resumed_from_epoch'] + 1}; seconds: the resumed part)"
        print(f"| {names[m]} | RecBole 1.2.1 | {f(t['recall@10'])} | {f(t['ndcg@10'])} | {f(t['recall@20'])} | {f(t['ndcg@20'])} | | {f(rb['valid']['ndcg@10'])} | {rb['best_epoch'] + 1} / {rb['epochs_run']}{resumed} | {rb['fit_seconds'] / max(1, here):.1f} | {'' if s is None else s} |")
        same = all(d[k] == mine[k] for k in mine) and d["valid_rows"] == d["valid_users"] == d["test_rows"] == d["test_users"] == mine["users"]
        lines.append(f"- {names[m]}: RecBole read {d['users']} users, {d['items']} items, {d['interactions']} interactions; valid {d['valid_rows']} rows of {d['valid_users']} users, test {d['test_rows']} rows of {d['test_users']} users; {d['train_rows']} training prefixes" + ("" if same else f" — NOT mmrec's split ({mine['users']} users, {mine['items']} items, {mine['interactions']} interactions)"))
    if os.path.exists(mm_path):
        t = json.load(open(mm_path))["metrics"]
        meta = artifacts.read_meta(f"{out}/mmrec_{m}.safetensors")
        rel = f"{(t['ndcg@10'] / rb['test']['ndcg@10'] - 1) * 100:+.1f} %" if rb and rb["test"]["ndcg@10"] > 0 else ""
        eps = epoch_seconds(f"{out}/mmrec_{m}.safetensors.log.jsonl")
        s = secs(f"mmrec_{m}.safetensors", f"mmrec_{m}.test.json")
        print(f"| {names[m]} | mmrec | {f(t['recall@10'])} | {f(t['ndcg@10'])} | {f(t['recall@20'])} | {f(t['ndcg@20'])} | {rel} | {f(meta.get('valid', {}).get('ndcg@10'))} | {meta['best_epoch'] + 1} / {len(meta.get('history', []))} | {'' if eps is None else f'{eps:.1f}'} | {'' if s is None else s} |")
with open(check, "w") as fh:
    if lines:
        fh.write(f"The split RecBole read (mmrec's: {mine['users']} users, {mine['items']} items, {mine['interactions']} interactions; one valid and one test interaction per user):\n\n" + "\n".join(lines) + "\n")
EOF
cat "$CHECK"
write_results "$TABLE" "$CHECK"

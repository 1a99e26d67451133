#!/usr/bin/env bash
# MISSRec quality on the example Scientific data (CLIP ViT-B/32 text + image features), against SASRec.
#
#   bench/missrec_quality.sh            # everything; outputs under examples/out/missrec (or $OUT)
#
# Settings come from examples/configs/missrec*.json: the public code's, except the fine-tuning temperature
# 0.1 (0.07 / 0.1 / 0.15 tried on validation NDCG@10 of the whole data set: 0.0915 / 0.0950 / 0.0912). The
# test split is evaluated once per model at the end. A step is skipped when its output exists (delete OUT to redo).
# Part 1: the whole data set. SASRec; MISSRec trained from scratch (IDs + features); MISSRec pre-trained
#         on the train split (self-supervised, no IDs), then fine-tuned with the transformer frozen.
# Part 2: transfer to unseen users. The users are split at random in two halves A and B (same catalogue);
#         MISSRec is pre-trained on A and carried inductively (no IDs: items by their features only) to B,
#         against training on B from scratch (SASRec; MISSRec inductive) and the zero-shot model.
# PARTS="1 2" (default) picks the parts. Single-threaded by default (the CPU is shared): several hours on
# a busy 2-core machine.
set -euo pipefail
# The final table also goes to docs/results/missrec.md (see write_results below), relative to the repository
# root found from this script's own location.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS=$ROOT/docs/results/missrec.md
source "$ROOT/bench/results.sh"  # settings VAR..., write_results TABLE [EXTRA] and step OUTPUT CMD...
COMMAND_LINE="$(settings OMP_NUM_THREADS PARTS OUT MMREC PY)bench/$(basename "$0")$([ $# -eq 0 ] || printf ' %q' "$@")"
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
MMREC=${MMREC:-.venv/bin/mmrec}
PY=${PY:-.venv/bin/python}
OUT=${OUT:-examples/out/missrec}
CONF=examples/configs
PARTS=" ${PARTS:-1 2} "
mkdir -p "$OUT"

evaluate() {  # evaluate MODEL DATASET [FEATS]: test metrics as MODEL.test.json, per-user ranks as MODEL.test.jsonl
  local feats=() m=${1%.safetensors}
  [ $# -ge 3 ] && feats=(--features "$3")
  step "$m.test.json" "$MMREC" eval "$1" "$2" "${feats[@]}" --split test -o "$m.test.json" --rankings "$m.test.jsonl" --top-k 10
}

# ---- part 1: Scientific
step "$OUT/ds.safetensors" "$MMREC" prepare examples/scientific -o "$OUT/ds.safetensors" --features-out "$OUT/feats.safetensors"
DS=$OUT/ds.safetensors F=$OUT/feats.safetensors
if [[ $PARTS == *" 1 "* ]]; then
step "$OUT/sasrec.safetensors" "$MMREC" finetune sasrec "$DS" --config $CONF/sasrec.json -o "$OUT/sasrec.safetensors"
step "$OUT/missrec.safetensors" "$MMREC" finetune missrec "$DS" --features "$F" --config $CONF/missrec.json -o "$OUT/missrec.safetensors"
step "$OUT/missrec.pre.safetensors" "$MMREC" pretrain missrec "$DS" --features "$F" --config $CONF/missrec_pretrain.json -o "$OUT/missrec.pre.safetensors"
step "$OUT/missrec.ft.safetensors" "$MMREC" finetune missrec "$DS" --features "$F" --config $CONF/missrec_finetune.json --init "$OUT/missrec.pre.safetensors" -o "$OUT/missrec.ft.safetensors"
evaluate "$OUT/sasrec.safetensors" "$DS"
evaluate "$OUT/missrec.safetensors" "$DS" "$F"
evaluate "$OUT/missrec.ft.safetensors" "$DS" "$F"
fi

# ---- part 2: transfer to the other half of the users
if [[ $PARTS == *" 2 "* ]]; then
if [ ! -e "$OUT/B.safetensors" ]; then
  "$PY" - "$DS" "$OUT" <<'EOF'
import sys
import numpy as np
from mmrec_cli.data import dataset as D
ds, out = D.load(sys.argv[1]), sys.argv[2]
perm = np.random.default_rng(0).permutation(ds.num_users)
for name, users in (("A", np.sort(perm[: ds.num_users // 2])), ("B", np.sort(perm[ds.num_users // 2 :]))):
    part = D.from_sequences([ds.sequence(u).tolist() for u in users], ds.item_ids, [ds.user_ids[u] for u in users])
    D.save(part, f"{out}/{name}.safetensors", {"command": "bench/missrec_quality.sh: users split in halves (seed 0)"}, {"source": sys.argv[1]}, {})
    print(f"{name}: {part.num_users} users, {len(part.items)} interactions", file=sys.stderr)
EOF
fi
A=$OUT/A.safetensors B=$OUT/B.safetensors
step "$OUT/B.sasrec.safetensors" "$MMREC" finetune sasrec "$B" --config $CONF/sasrec.json -o "$OUT/B.sasrec.safetensors"
step "$OUT/B.scratch.safetensors" "$MMREC" finetune missrec "$B" --features "$F" --config $CONF/missrec.json --set model.ids=false -o "$OUT/B.scratch.safetensors"
step "$OUT/A.pre.safetensors" "$MMREC" pretrain missrec "$A" --features "$F" --config $CONF/missrec_pretrain.json -o "$OUT/A.pre.safetensors"
step "$OUT/B.zeroshot.safetensors" "$MMREC" transfer "$OUT/A.pre.safetensors" "$B" --features "$F" --mode inductive --epochs 0 -o "$OUT/B.zeroshot.safetensors"
step "$OUT/B.transfer.safetensors" "$MMREC" transfer "$OUT/A.pre.safetensors" "$B" --features "$F" --mode inductive --config $CONF/missrec_finetune.json -o "$OUT/B.transfer.safetensors"
evaluate "$OUT/B.sasrec.safetensors" "$B"
evaluate "$OUT/B.scratch.safetensors" "$B" "$F"
evaluate "$OUT/B.zeroshot.safetensors" "$B" "$F"
evaluate "$OUT/B.transfer.safetensors" "$B" "$F"
fi

PROTOCOL="the bundled Scientific data (examples/scientific), chronological leave-one-out, full ranking over all items; CLIP ViT-B/32 text + image features; settings of $CONF/missrec*.json; parts:${PARTS% } (1: the whole data set; 2: users split at random, seed 0, in halves A and B over the same catalogue, pre-trained on A, evaluated on B); best epoch by validation NDCG@10; test evaluated once per model."
TABLE=$(mktemp)
trap 'rm -f "$TABLE"' EXIT
# ---- the table
"$PY" - "$OUT" <<'EOF' | tee "$TABLE"
import json, os, sys
out = sys.argv[1]
times = dict(l.rstrip("\n").split("\t") for l in open(f"{out}/times.tsv")) if os.path.exists(f"{out}/times.tsv") else {}
rows = [
    ("Scientific", "SASRec (IDs)", "sasrec"),
    ("Scientific", "MISSRec from scratch (IDs + text + image)", "missrec"),
    ("Scientific", "MISSRec pre-trained on train split, fine-tuned (frozen transformer)", "missrec.ft"),
    ("users B", "SASRec (IDs) trained on B", "B.sasrec"),
    ("users B", "MISSRec inductive, from scratch on B", "B.scratch"),
    ("users B", "MISSRec pre-trained on A, zero-shot", "B.zeroshot"),
    ("users B", "MISSRec pre-trained on A, inductive transfer to B", "B.transfer"),
]
import math
from mmrec_cli.io import artifacts
from mmrec_cli.data import dataset as D

def cold_ndcg(name: str, data: str) -> str:
    """NDCG@10 over the test targets never seen in the training split of that data (cold items), and their count."""
    path = f"{out}/{name}.test.jsonl"
    if not os.path.exists(path):
        return ""
    ds = D.load(f"{out}/{'ds' if data == 'Scientific' else 'B'}.safetensors")
    seen = {ds.item_ids[i] for i in set(ds.items[ds.split == 0].tolist())}
    recs = [json.loads(l) for l in open(path)]
    cold = [r for r in recs if r["targets"][0] not in seen]
    return f"{sum(1 / math.log2(r['ranks'][0] + 2) for r in cold if r['ranks'][0] < 10) / max(1, len(cold)):.4f} ({len(cold)})"

print("| data | model | valid NDCG@10 | test NDCG@10 | test Recall@10 | test NDCG@50 | test Recall@50 | test NDCG@10, cold targets (n) | best epoch | train s |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for data, label, name in rows:
    path = f"{out}/{name}.test.json"
    if not os.path.exists(path):
        continue
    m = json.load(open(path))["metrics"]
    meta = artifacts.read_meta(f"{out}/{name}.safetensors")
    valid = meta.get("valid", {}).get("ndcg@10")
    secs = times.get(f"{name}.safetensors", "")
    print(f"| {data} | {label} | {'' if valid is None else f'{valid:.4f}'} | {m['ndcg@10']:.4f} | {m['recall@10']:.4f} | {m['ndcg@50']:.4f} | {m['recall@50']:.4f} | {cold_ndcg(name, data)} | {meta.get('best_epoch')} | {secs} |")
EOF
write_results "$TABLE"

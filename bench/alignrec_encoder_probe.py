"""AlignRec's intermediate protocol for the item encoder: the zero-shot feature probe (`mmrec eval --probe`'s ranking
by the cosine to the mean of the history's item vectors) on two item representations, printed as one JSON object:

- "encoder": h_enc of the item encoder pre-trained by inter-content alignment (`mmrec pretrain alignrec`);
- "standardised": the L2-normalised features concatenated, what AlignRec's `model.content=raw` reads.

    python bench/alignrec_encoder_probe.py DATASET FEATURES PRETRAINED SPLIT > probe.json

bench/mmmlp_alignrec_quality.sh runs it on valid and test. The pre-trained model is rebuilt from its own recorded
config and must have been trained on DATASET and FEATURES (`mmrec eval`'s checks).
"""

from __future__ import annotations

import json
import sys

from mmrec_cli.data import dataset as D
from mmrec_cli.models import alignrec as A
from mmrec_cli.training import loading


def encoder_probe(dataset: str, features: str, pretrained: str, split: str) -> dict:
    ds = D.load(dataset)
    spec, net, _ = loading.load_trained(pretrained, ds, features)
    feats, _ = loading.features_for(spec, ds, features)
    standardised = A.Model(A.Config(content="raw"), ds.num_items, feats).content()[0]  # (N, sum of feature dims)
    tables = {"encoder": net.content()[0], "standardised": standardised}  # h_enc (N, d)
    return {"probe": A.probe(ds, tables, split), "split": split}


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit("usage: python bench/alignrec_encoder_probe.py DATASET FEATURES PRETRAINED SPLIT")
    print(json.dumps(encoder_probe(*sys.argv[1:])))

"""The model artifact: a trained model's weights plus everything needed to rebuild and trust it.

Metadata: model name, stage (pretrain | finetune | transfer), the resolved config, fingerprints of
the dataset and features it was trained on, the best epoch and its validation metrics, the history.
Feature tables are not stored (models keep them in non-persistent buffers); the features file is
named by fingerprint and must be given again, and a different one is refused.
"""

from __future__ import annotations

from mmrec_cli.errors import mismatch
from mmrec_cli.io import artifacts


def save(path: str, model, meta: dict) -> None:
    state = {k: v for k, v in model.state_dict().items()}
    artifacts.save(path, state, "model", meta)


def load(path: str) -> tuple[dict, dict]:
    return artifacts.load(path, kind="model")


def check_dataset(meta: dict, ds, path: str) -> None:
    want = meta.get("dataset", {}).get("fingerprint")
    if want and want != ds.fingerprint():
        raise mismatch(
            f"{path}: the model was trained on dataset {meta['dataset'].get('path')} ({want}), not on "
            f"{ds.meta.get('path')} ({ds.fingerprint()}); evaluate it on the dataset it was trained on, or use `mmrec transfer`"
        )


def check_features(meta: dict, feats_meta: dict | None, path: str) -> None:
    want = (meta.get("features") or {}).get("fingerprint")
    if want is None:
        return
    if feats_meta is None:
        raise mismatch(f"{path}: the model needs the features it was trained on ({meta['features'].get('path')}); pass --features")
    if feats_meta["fingerprint"] != want:
        raise mismatch(
            f"{path}: the model was trained with features {meta['features'].get('path')} ({want}), not "
            f"{feats_meta.get('path')} ({feats_meta['fingerprint']}); pass the same features file"
        )

"""RecBole 1.2.1's SASRec, GRU4Rec or BERT4Rec on a dataset exported by `mmrec export --format recbole`, with the
settings of an mmrec example config mapped to RecBole's key names; the best-validation model's test metrics as JSON.

    .venv-recbole/bin/python bench/recbole_run.py MODEL DATA.yaml CONFIG.json -o OUT.json [--epochs N] [--seed S] [--work DIR]

MODEL is sasrec, gru4rec or bert4rec; DATA.yaml the RecBole settings `mmrec export` wrote beside NAME.inter (the
leave-one-out split and full ranking); CONFIG.json mmrec's example config of the model (examples/configs/MODEL.json),
whose keys are mapped to RecBole's as mmrec_cli/config.py's RECBOLE_ALIASES maps them the other way. On top of these:
RecBole's cross-entropy (`loss_type: CE`, no negative sampling), Recall and NDCG at 10, 20 and 50, validation on
NDCG@10, stopping_step 10 and seed 2020 (where the config names no other), `reproducibility: true`, and the CPU. --epochs overrides the epoch
limit (a smoke run), --seed the config's seed. RecBole's log, TensorBoard events and checkpoint go under --work (default: OUT.json's name
without .json, as a folder), since RecBole writes them relative to the working directory.

--resume continues an interrupted run from the checkpoint in --work (RecBole's `resume_checkpoint`: the model, the
optimizer, the best validation score and the patience count). RecBole saves that checkpoint only at a best
validation epoch, so the epochs after it are trained again, and neither the random state of the batch order nor of
the masks is in it: a resumed run does not repeat the uninterrupted run's draws. The output records the epoch it
resumed from.

The steps are those of `recbole.quick_start.run_recbole` (config, seed, logger, dataset, split, model, trainer, fit,
test on the best-validation checkpoint) without the module itself: `recbole.quick_start` imports Ray at import
time (for hyper-parameter tuning), and run_recbole's FLOPs count (thop) and environment table (psutil) only log.

Runs in RecBole's own virtualenv (.venv-recbole/, made by bench/recbole_reference.sh); never imports mmrec.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
import yaml

# RecBole's trainer saves its best-validation checkpoint (with its Config object and numpy arrays inside) and loads it
# back with a plain `torch.load(file, map_location=...)`. Since torch 2.6, torch.load defaults to weights_only=True,
# which refuses those objects ("Weights only load failed"). The checkpoint is RecBole's own, written by this very run,
# so it is loaded with weights_only=False. Patched here, before RecBole is imported.
_torch_load = torch.load


def _load_own_checkpoint(*args, **kwargs):
    kwargs.setdefault("weights_only", False)
    return _torch_load(*args, **kwargs)


torch.load = _load_own_checkpoint

from recbole.config import Config  # noqa: E402  (after the torch.load patch)
from recbole.data import create_dataset, data_preparation  # noqa: E402
from recbole.utils import get_model, get_trainer, init_logger, init_seed  # noqa: E402
from recbole_settings import MODELS, PROTOCOL, settings  # noqa: E402  (this script's folder)


def _users(dataset) -> int:
    """The number of distinct users among a split's rows (the rows themselves: one per user under leave-one-out)."""
    return int(torch.unique(dataset.inter_feat[dataset.uid_field]).numel())


def _resume(trainer, saved: Path, mapped: dict) -> int | None:
    """Load the newest checkpoint under `saved` into `trainer` (None when there is none); a checkpoint written under
    other settings of the mmrec config stops the run."""
    files = sorted(saved.glob("*.pth"), key=lambda f: f.stat().st_mtime)
    if not files:
        return None
    stored = torch.load(files[-1], map_location="cpu")
    for key, value in mapped.items():
        if stored["config"][key] != value:
            raise SystemExit(f"recbole_run: {files[-1]} was trained with {key} = {stored['config'][key]!r}, not {value!r}; delete it")
    trainer.resume_checkpoint(files[-1])
    return int(stored["epoch"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", choices=sorted(MODELS))
    ap.add_argument("data_yaml", type=Path)
    ap.add_argument("mmrec_config", type=Path)
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--epochs", type=int, help="override the epoch limit (a smoke run)")
    ap.add_argument("--seed", type=int, help="override the config's train.seed (runs over seeds)")
    ap.add_argument("--work", type=Path, help="folder for RecBole's log, TensorBoard events and checkpoint")
    ap.add_argument("--resume", action="store_true", help="continue from the checkpoint in --work, if there is one")
    args = ap.parse_args()

    output = args.output.resolve()
    work = (args.work or output.with_suffix("")).resolve()
    data_yaml = args.data_yaml.resolve()
    # The config's settings (epochs, batch, lr, stopping_step, seed, valid_metric where it names one, the model's
    # sizes) over the protocol's; the config cannot name the others (loss, metrics, top-k, device).
    mapped = settings(args.model, json.loads(args.mmrec_config.read_text()))
    if args.epochs is not None:
        mapped["epochs"] = args.epochs
    if args.seed is not None:
        mapped["seed"] = args.seed
    config_dict = {**PROTOCOL, **mapped}
    config_dict["checkpoint_dir"] = str(work / "saved")
    # The exported YAML's data_path is relative to where the export ran, which is this process's directory until
    # the chdir below: resolve it now.
    config_dict["data_path"] = str(Path(yaml.safe_load(data_yaml.read_text())["data_path"]).resolve())
    # RecBole's Config also reads `--key=value` settings from sys.argv (and warns about the rest): only the settings
    # above may count, so it sees the program name alone.
    argv, sys.argv = sys.argv, sys.argv[:1]
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)  # RecBole writes ./log/ and ./log_tensorboard/ relative to the working directory

    t0 = time.perf_counter()
    # As recbole.quick_start.run_recbole does.
    config = Config(model=MODELS[args.model], config_file_list=[str(data_yaml)], config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    from logging import getLogger

    logger = getLogger()
    logger.info(argv)
    logger.info(config)
    dataset = create_dataset(config)
    logger.info(dataset)
    counts = {"users": dataset.user_num - 1, "items": dataset.item_num - 1, "interactions": dataset.inter_num}  # less RecBole's [PAD] ids
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    logger.info(model)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    resumed_from = _resume(trainer, work / "saved", mapped) if args.resume else None
    t_fit = time.perf_counter()
    best_valid_score, best_valid_result = trainer.fit(train_data, valid_data, saved=True, show_progress=config["show_progress"])
    fit_seconds = time.perf_counter() - t_fit
    test_result = trainer.evaluate(test_data, load_best_model=True, show_progress=config["show_progress"])
    if best_valid_result is None:  # resumed, and no epoch after the checkpoint did better: validate the checkpoint
        best_valid_result = trainer.evaluate(valid_data, load_best_model=False, show_progress=config["show_progress"])
    logger.info(f"best valid : {best_valid_result}")
    logger.info(f"test result: {test_result}")

    # The epoch of the best validation score is in the checkpoint that fit saved at it (0-based).
    best_epoch = torch.load(trainer.saved_model_file, map_location="cpu")["epoch"]
    result = {
        "tool": "RecBole 1.2.1",
        "model": MODELS[args.model],
        "test": {k: float(v) for k, v in test_result.items()},
        "valid": {k: float(v) for k, v in best_valid_result.items()},
        "best_valid_score": float(best_valid_score),
        "best_epoch": int(best_epoch),  # 0-based, as mmrec's artifacts record it
        "epochs_run": max(trainer.train_loss_dict, default=resumed_from or 0) + 1,  # 0-based epochs, resumed runs included
        "epochs_this_process": len(trainer.train_loss_dict),
        "resumed_from_epoch": resumed_from,  # 0-based epoch of the checkpoint a resumed run started after, or null
        "fit_seconds": round(fit_seconds, 1),  # this process's epochs only
        "seconds": round(time.perf_counter() - t0, 1),
        "dataset": {
            **counts,
            "train_rows": train_data._dataset.inter_num,  # RecBole's training instances: one per prefix
            **{f"{name}_rows": split._dataset.inter_num for name, split in (("valid", valid_data), ("test", test_data))},
            **{f"{name}_users": _users(split._dataset) for name, split in (("valid", valid_data), ("test", test_data))},
        },
        "settings": {k: v for k, v in config_dict.items() if k != "checkpoint_dir"},
        "data": str(data_yaml),
        "torch": torch.__version__,
        "log": next((h.baseFilename for h in logger.handlers if hasattr(h, "baseFilename")), None),
    }
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(output)
    print(f"wrote {output}: test NDCG@10 {result['test'].get('ndcg@10', float('nan')):.4f}, best epoch {best_epoch + 1} of {result['epochs_run']}", file=sys.stderr)


if __name__ == "__main__":
    main()

from pathlib import Path

import torch
from typer.testing import CliRunner

from mmrec_cli.cli.app import app
from mmrec_cli.io import artifacts
from mmrec_cli.models import sasrec
from mmrec_cli.training import stages
from mmrec_cli.training.loop import TrainConfig

runner = CliRunner()
CFG = sasrec.Config(max_len=8, hidden=16, layers=1, heads=2, inner=32)


def train(ds, tmp_path, epochs, resume=False, name="ck"):
    run = stages.Run(checkpoint=str(tmp_path / f"{name}.safetensors"), resume=resume)
    return stages.finetune("sasrec", ds, None, CFG, TrainConfig(epochs=epochs, batch_size=4, patience=0, seed=7), run)


def test_resume_is_bit_identical(tiny_dataset, tmp_path):
    _, ds = tiny_dataset
    full, r_full = train(ds, tmp_path, 4, name="full")
    train(ds, tmp_path, 2, name="part")  # "killed" after two epochs: the checkpoint holds epoch 1
    resumed, r_res = train(ds, tmp_path, 4, resume=True, name="part")
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    assert [h["loss"] for h in r_full.history] == [h["loss"] for h in r_res.history]
    assert r_full.best_epoch == r_res.best_epoch


def test_resume_without_a_checkpoint_says_it_starts_over(tiny_dataset, tmp_path):
    _, ds = tiny_dataset
    said = []
    run = stages.Run(checkpoint=str(tmp_path / "none.ckpt"), resume=True, log=said.append)
    _, r = stages.finetune("sasrec", ds, None, CFG, TrainConfig(epochs=1, batch_size=4, patience=0, seed=7), run)
    assert said[0] == f"--resume: no checkpoint at {tmp_path / 'none.ckpt'}; starting from the first epoch"
    assert [h["epoch"] for h in r.history] == [0]


def test_same_seed_same_numbers(tiny_dataset, tmp_path):
    _, ds = tiny_dataset
    _, a = train(ds, tmp_path, 2, name="a")
    _, b = train(ds, tmp_path, 2, name="b")
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    assert [h["valid"] for h in a.history] == [h["valid"] for h in b.history]


def test_early_stopping_keeps_the_best_epoch(tiny_dataset, tmp_path):
    _, ds = tiny_dataset
    run = stages.Run()
    _, r = stages.finetune("sasrec", ds, None, CFG, TrainConfig(epochs=30, batch_size=4, patience=2, seed=1), run)
    scores = [h["valid"]["ndcg@10"] for h in r.history]
    assert len(r.history) < 30 and r.best_metrics["ndcg@10"] == max(scores)
    assert r.history[r.best_epoch]["valid"]["ndcg@10"] == max(scores)


def test_cli_finetune_eval_and_refusals(tiny_dataset, tmp_path):
    ds_path, _ = tiny_dataset
    model = tmp_path / "m.safetensors"
    r = runner.invoke(app, ["finetune", "sasrec", str(ds_path), "-o", str(model), "--epochs", "2", "--set", "model.hidden=16", "--set", "model.inner=32", "--max-len", "8"])
    assert r.exit_code == 0, r.output
    meta = artifacts.read_meta(model, "model")
    assert meta["config"]["model"]["hidden"] == 16 and meta["config"]["model"]["max_len"] == 8 and meta["config"]["train"]["epochs"] == 2
    assert not Path(f"{model}.ckpt").exists()
    out = tmp_path / "m.json"
    r = runner.invoke(app, ["eval", str(model), str(ds_path), "--split", "test", "-o", str(out), "--rankings", str(tmp_path / "r.jsonl"), "--top-k", "3"])
    assert r.exit_code == 0, r.output
    import json

    res = json.loads(out.read_text())
    assert res["split"] == "test" and res["mask_history"] is False and res["metrics"]["users"] == 12
    ranks = [json.loads(line) for line in open(tmp_path / "r.jsonl")]
    assert len(ranks) == 12 and len(ranks[0]["top"]) == 3
    # another dataset: refused
    from conftest import tiny_sequences

    from mmrec_cli.data import dataset as D

    other = D.from_sequences(tiny_sequences(seed=5), [f"i{i}" for i in range(20)], [f"u{u}" for u in range(12)])
    D.save(other, str(tmp_path / "other.safetensors"), {}, {}, {})
    r = runner.invoke(app, ["eval", str(model), str(tmp_path / "other.safetensors")])
    assert r.exit_code == 5 and "the model was trained on dataset" in r.stderr
    r = runner.invoke(app, ["eval", str(ds_path), str(ds_path)])
    assert r.exit_code == 5 and "expected a model artifact, got a dataset artifact" in r.stderr
    r = runner.invoke(app, ["finetune", "sasrec", str(ds_path), "-o", str(model), "--set", "model.hiden=3"])
    assert r.exit_code == 3 and "unknown key 'model.hiden'" in r.stderr


def test_help_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys; from mmrec_cli.cli.app import app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_resume_refuses_a_checkpoint_of_other_settings(tiny_dataset, tmp_path):
    """A resume with another --lr/--seed trained a hybrid whose metadata claimed the new settings."""
    from mmrec_cli import models
    from mmrec_cli.training import loading

    path, ds = tiny_dataset
    ck = tmp_path / "m.safetensors.ckpt"
    flags = {"train.epochs": 2, "train.batch_size": 4, "train.seed": 7, "model.hidden": 16, "model.inner": 32}
    cfg = loading.resolve_stage(models.get("sasrec"), None, [], flags)
    run = stages.Run(checkpoint=str(ck), identity=loading.run_identity(cfg, ds, None))
    stages.finetune("sasrec", ds, None, cfg.model, cfg.train, run)  # as if killed after its last checkpoint
    common = ["finetune", "sasrec", str(path), "--batch-size", "4", "--seed", "7", "--set", "model.hidden=16", "--set", "model.inner=32", "-o", str(tmp_path / "m.safetensors"), "--resume"]
    r = runner.invoke(app, [*common, "--epochs", "3", "--lr", "0.003"])
    assert r.exit_code == 5
    assert r.output.strip() == f"error: --resume: {ck} was made with config.train.lr = 0.001, this run has 0.003; pass the same settings, or remove {ck} to start over"
    r = runner.invoke(app, [*common, "--epochs", "3"])  # more epochs of the same run: allowed
    assert r.exit_code == 0, r.output
    assert "resumed from" in r.output


def _drop_recorded_key(path, where: list[str], key: str) -> None:
    """Rewrite an artifact as a version before `key` existed wrote it: the same tensors, no `key` under `where`."""
    tensors, meta = artifacts.load(path, torch=False)
    section = meta
    for name in where:
        section = section[name]
    del section[key]
    kept = {k: v for k, v in meta.items() if k not in ("schema", "kind", "versions", "tensors_sha256")}
    artifacts.save(path, tensors, meta["kind"], kept)


def test_resume_accepts_a_checkpoint_made_before_a_setting_existed(tiny_dataset, tmp_path):
    """A setting added later is missing from older checkpoints: the run keeps its default, so resuming is safe;
    only a run that sets another value is refused."""
    from mmrec_cli import models
    from mmrec_cli.training import loading

    path, ds = tiny_dataset
    ck = tmp_path / "m.safetensors.ckpt"
    flags = {"train.epochs": 2, "train.batch_size": 4, "train.seed": 7, "model.hidden": 16, "model.inner": 32}
    cfg = loading.resolve_stage(models.get("sasrec"), None, [], flags)
    run = stages.Run(checkpoint=str(ck), identity=loading.run_identity(cfg, ds, None))
    stages.finetune("sasrec", ds, None, cfg.model, cfg.train, run)
    _drop_recorded_key(ck, ["identity", "config", "model"], "init_std")
    common = ["finetune", "sasrec", str(path), "--batch-size", "4", "--seed", "7", "--set", "model.hidden=16", "--set", "model.inner=32", "-o", str(tmp_path / "m.safetensors"), "--resume", "--epochs", "3"]
    r = runner.invoke(app, [*common, "--set", "model.init_std=0.05"])
    assert r.exit_code == 5
    assert r.output.strip() == f"error: --resume: {ck} was made with config.model.init_std = 0.02 (not recorded: the file predates the setting, which then had its default), this run has 0.05; pass the same settings, or remove {ck} to start over"
    r = runner.invoke(app, common)
    assert r.exit_code == 0, r.output
    assert "resumed from" in r.output

"""The one training loop: a plain function used by pretrain, finetune and transfer.

It knows nothing about models: it takes a model, a function that yields the batches of an epoch,
a function that turns a batch into a loss, and optionally a validation function returning metrics.
It keeps the best state by validation `metric` (early stopping after `patience` evaluations without
improvement), writes a checkpoint atomically after every epoch (model, optimizer, RNG, history,
best state) and resumes from it bit for bit: the batch order depends only on (seed, epoch), and
the RNG state is restored.

Under torchrun (see `mmrec_cli.training.distributed`) the model is wrapped in DistributedDataParallel, each
rank trains on its share of every global batch with its loss scaled so that the gradients equal a
single process's, every rank validates, and rank 0 alone writes the checkpoint (holding every
rank's RNG state). `precision` bf16/fp16 runs the loss under torch.autocast.

With `log_file`, one JSON line per epoch (`EpochLog`) is appended and flushed as training goes: the
epoch, the optimizer steps so far, the mean loss, the validation metrics when evaluated, the learning
rate and the epoch's wall-clock seconds. The checkpoint keeps these records, and a resumed run rewrites
the file from them before it appends, so that it equals an uninterrupted run's log but for the seconds.
The log is written beside the artifact, never into it: artifacts stay byte-reproducible.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from mmrec_cli.config import PREDATES, flatten
from mmrec_cli.errors import MmrecError, bad_input, mismatch, usage
from mmrec_cli.io import artifacts


@dataclass
class TrainConfig:
    epochs: int = 200
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 10  # evaluations without improvement before stopping; 0 = never stop early
    eval_every: int = 1
    metric: str = "ndcg@10"
    clip_grad: float = 0.0
    seed: int = 2020
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # torch.autocast around the loss; fp16 adds loss scaling


@dataclass
class FitResult:
    best_state: dict
    best_epoch: int
    best_metrics: dict
    history: list = field(default_factory=list)


def fit(
    model: torch.nn.Module,
    batches: Callable[[int], Iterator[dict]],
    loss_fn: Callable[[dict], torch.Tensor],
    cfg: TrainConfig,
    validate: Callable[[], dict] | None = None,
    checkpoint: str | None = None,
    resume: bool = False,
    log: Callable[[str], None] = lambda s: None,
    progress=None,
    identity: dict | None = None,
    log_file: str | None = None,
    tensorboard: str | None = None,
    defaults: dict | None = None,
    same_results: tuple[str, ...] = (),
) -> FitResult:
    """Train `model` in place; return the best state (the last one when there is no validation).

    `identity` (the resolved config and the inputs' fingerprints) is stored in the checkpoint; resuming
    a checkpoint of another identity is refused, so a resumed run never mixes two settings (`check_resumable`, which
    reads `defaults` and `same_results`). `log_file` receives one JSON line per epoch, `tensorboard` (a folder) the
    same numbers as TensorBoard scalars."""
    from mmrec_cli.training import distributed as D

    ctx = D.current()
    model.to(ctx.device)
    torch.manual_seed(cfg.seed + ctx.rank)  # rank 0 draws what a single process draws
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = D.grad_scaler(ctx.device, cfg.precision) if cfg.precision == "fp16" else None
    step_fn = D.wrap(model, loss_fn, ctx, D.first_batch(batches(0), ctx) if ctx.world > 1 else None)
    state = _State()
    if resume and checkpoint and Path(checkpoint).exists():
        check_resumable(checkpoint, identity, defaults, same_results)
        state = load_checkpoint(checkpoint, model, opt, ctx.rank)
        log(f"resumed from {checkpoint} after epoch {state.epoch}")
    elif resume:  # not an error: `--resume` on every call of a Makefile rule is the usual idiom
        log(f"--resume: no checkpoint at {checkpoint}; starting from the first epoch")
    log(f"device: {D.describe(ctx.device)}" + (f", {ctx.world} processes" if ctx.world > 1 else ""))
    if len(state.records) != len(state.history):  # a checkpoint written before the records were kept
        state.records = records_from_history(state.history, opt.param_groups[0]["lr"])
    epoch_log = EpochLog(log_file, tensorboard, state.records) if ctx.main else None
    try:
        while state.epoch < cfg.epochs and not state.stopped:
            epoch = state.epoch
            model.train()
            t0 = time.perf_counter()
            epoch_batches = batches(epoch) if ctx.world == 1 else D.shard(batches(epoch), ctx.rank, ctx.world)
            loss, steps = _epoch(model, opt, params, epoch_batches, step_fn, cfg, progress, ctx, scaler)
            entry = {"epoch": epoch, "loss": loss, "steps": steps}  # no wall time: artifacts stay byte-reproducible
            if validate is not None and (epoch + 1) % cfg.eval_every == 0:
                _validate(model, validate, cfg, state, entry, ctx)
            elif validate is None:
                state.best_state, state.best_epoch = _copy_state(model), epoch
            state.history.append(entry)
            state.epoch = epoch + 1
            seconds = time.perf_counter() - t0
            state.records.append(_record(entry, state.history, opt.param_groups[0]["lr"], seconds))
            log(_line(entry, cfg.metric, seconds))
            if checkpoint:
                save_checkpoint(checkpoint, model, opt, state, ctx, identity)
            if epoch_log is not None:
                epoch_log.write(state.records[-1])
        if epoch_log is not None:
            epoch_log.finish()
    finally:
        if epoch_log is not None:
            epoch_log.close()
    if state.best_state is None:
        state.best_state, state.best_epoch = _copy_state(model), state.epoch - 1
    return FitResult(state.best_state, state.best_epoch, state.best_metrics, state.history)


def _epoch(model, opt, params, batches, loss_fn, cfg: TrainConfig, progress, ctx=None, scaler=None) -> tuple[float, int]:
    from mmrec_cli.training import distributed as D

    ctx = ctx or D.current()
    total, steps = 0.0, 0
    for batch in batches:
        weightless = batch.pop("_weightless", False)
        D.stand_in(weightless)
        batch = D.to_device(batch, ctx.device)
        opt.zero_grad(set_to_none=True)
        with D.autocast(ctx.device, cfg.precision):
            loss = loss_fn(batch)
        value = None
        if ctx.world > 1:
            # DDP averages gradients over ranks: scale each rank's mean loss by (its targets x world /
            # all targets) so that the average is the gradient of the global batch's mean loss.
            n = 0 if weightless else D.count_targets(batch)
            ok = bool(torch.isfinite(loss))
            n_all, loss_sum, ok_all = D.all_sum([n, loss.item() * n if ok else 0.0, float(ok)], ctx)
            if ok_all < ctx.world:
                raise MmrecError(f"training diverged: loss is not finite at step {steps} on some process; lower the learning rate",)
            loss = loss * (n * ctx.world / max(n_all, 1.0))
            value = loss_sum / max(n_all, 1.0)
        elif not torch.isfinite(loss):
            raise MmrecError(f"training diverged: loss is {loss.item()} at step {steps}; lower the learning rate",)
        if scaler is None:
            loss.backward()
            if cfg.clip_grad > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
            opt.step()
        else:
            scaler.scale(loss).backward()
            if cfg.clip_grad > 0:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
            scaler.step(opt)
            scaler.update()
        total += loss.item() if value is None else value
        steps += 1
        if progress:
            progress(1)
    return total / max(1, steps), steps


def _validate(model, validate, cfg: TrainConfig, state: _State, entry: dict, ctx=None) -> None:
    from mmrec_cli.training import distributed as D

    metrics = D.broadcast(validate(), ctx or D.current())  # every rank decides on rank 0's numbers
    if cfg.metric not in metrics:
        raise bad_input(f"train.metric '{cfg.metric}' is not computed; choose one of {', '.join(sorted(metrics))}")
    entry["valid"] = {k: v for k, v in metrics.items() if isinstance(v, float)}
    score = metrics[cfg.metric]
    if score > state.best_score:
        state.best_score, state.best_epoch, state.best_metrics = score, entry["epoch"], metrics
        state.best_state, state.bad = _copy_state(model), 0
    else:
        state.bad += 1
        state.stopped = cfg.patience > 0 and state.bad >= cfg.patience


def _record(entry: dict, history: list, lr: float, seconds: float | None) -> dict:
    """One line of the training log: `entry` of the history (ending `history`) with the steps so far, the
    learning rate and the wall-clock seconds of the epoch (None where they were not measured)."""
    record = {"epoch": entry["epoch"], "step": sum(h["steps"] for h in history), "loss": entry["loss"]}
    if "valid" in entry:
        record["valid"] = entry["valid"]
    return record | {"lr": lr, "seconds": None if seconds is None else round(seconds, 3)}


def records_from_history(history: list, lr: float) -> list[dict]:
    """The training log's lines rebuilt from a history alone: no wall-clock seconds."""
    return [_record(entry, history[: i + 1], lr, None) for i, entry in enumerate(history)]


class EpochLog:
    """The training log: JSON lines, one per epoch, each flushed when written, so that `tail -f` follows it.

    `done` are the lines of the epochs already trained (a resumed run): the file is rewritten with them
    now, and later lines are appended. A fresh run (`done` empty) removes an old file now and starts a
    new one with its first epoch, so that a run failing before it leaves no file. `tensorboard`, a
    folder, gets the same numbers as scalars against the epoch; earlier events from the epoch on are
    hidden (TensorBoard's purge step), so a resumed run does not show the interrupted one's last epochs."""

    def __init__(self, path: str | None, tensorboard: str | None, done: list[dict]):
        from mmrec_cli.io import atomic

        self.path, self.tensorboard, self.start = path, tensorboard, len(done)
        self.file = None
        self.writer = None
        self.writer_class = None if tensorboard is None else summary_writer_class()  # missing: an error before training
        if path is None:
            return
        if done:
            self.write_lines(done)
        else:
            try:
                Path(path).unlink(missing_ok=True)
            except OSError as err:
                raise atomic.io_error(err, Path(path)) from err

    def write(self, record: dict) -> None:
        if self.path is not None:
            from mmrec_cli.io import atomic

            try:
                if self.file is None:
                    self.file = open(self.path, "a", encoding="utf-8")  # kept open across epochs
                self.file.write(_json_line(record))
                self.file.flush()
            except OSError as err:
                raise atomic.io_error(err, Path(self.path)) from err
        if self.tensorboard is not None:
            if self.writer is None:
                self.writer = self.writer_class(log_dir=self.tensorboard, purge_step=self.start)
            step = record["epoch"]
            self.writer.add_scalar("loss", record["loss"], step)
            self.writer.add_scalar("lr", record["lr"], step)
            for name, value in record.get("valid", {}).items():
                self.writer.add_scalar(f"valid/{name}", value, step)
            self.writer.flush()

    def finish(self) -> None:
        """The file exists once training is over, also when it trained no epoch (zero-shot transfer)."""
        if self.path is not None and not Path(self.path).exists():
            self.write_lines([])

    def write_lines(self, records: list[dict]) -> None:
        from mmrec_cli.io import atomic

        atomic.write_text(self.path, "".join(_json_line(r) for r in records))

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.writer is not None:
            self.writer.close()


def _json_line(record: dict) -> str:
    return json.dumps(record) + "\n"


TENSORBOARD_MISSING = "--tensorboard needs the tensorboard package; install it with `pip install 'mmrec[tensorboard]'`, or leave out --tensorboard"


def summary_writer_class():
    """TensorBoard's SummaryWriter (torch's, over the optional `tensorboard` package)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise usage(TENSORBOARD_MISSING) from None
    return SummaryWriter


def _line(entry: dict, metric: str, seconds: float) -> str:
    s = f"epoch {entry['epoch']:>3}  loss {entry['loss']:.4f}  {seconds:.1f}s"
    if "valid" in entry:
        s += f"  valid {metric} {entry['valid'][metric]:.4f}"
    return s


def _copy_state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class _State:
    def __init__(self):
        self.epoch = 0
        self.best_score = -math.inf
        self.best_epoch = -1
        self.best_metrics: dict = {}
        self.best_state: dict | None = None
        self.bad = 0
        self.stopped = False
        self.history: list = []
        self.records: list = []  # the training log's lines (history + steps so far, lr, seconds)

    def to_json(self) -> dict:
        keys = ("epoch", "best_epoch", "best_metrics", "bad", "stopped", "history", "records")
        return {k: getattr(self, k) for k in keys} | {"best_score": None if self.best_score == -math.inf else self.best_score}


def save_checkpoint(path: str, model, opt, state: _State, ctx=None, identity: dict | None = None) -> None:
    """Everything needed to continue: model, optimizer, RNG, best state, history. Atomic.

    Under torchrun every rank must call it (the RNG states are gathered); rank 0 writes."""
    from mmrec_cli.training import distributed as D

    ctx = ctx or D.current()
    rngs = D.gather_rng(ctx)
    if not ctx.main:
        return
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if state.best_state is not None:
        tensors |= {f"best.{k}": v for k, v in state.best_state.items()}
    opt_tensors, opt_meta = _flatten_optimizer(opt.state_dict())
    tensors |= opt_tensors
    for r, rng in enumerate(rngs):  # rank 0's under the single-process names
        tensors |= {("rng." + k if r == 0 else f"rng.{k}.r{r}"): v for k, v in rng.items()}
    artifacts.save(path, tensors, "checkpoint", {"state": state.to_json(), "optimizer": opt_meta, "world": ctx.world, "identity": identity})


# Settings a resumed run may change: more (or fewer) epochs continue the same training.
_RESUMABLE_CHANGES = {"config.train.epochs"}


def check_resumable(path: str, identity: dict | None, defaults: dict | None = None, same_results: tuple[str, ...] = ()) -> None:
    """Refuse to continue a checkpoint made with other settings or inputs (exit 5), naming the first difference.
    A setting the checkpoint does not record was added after it was written: it counts as made with the setting's
    value in `defaults` ("model.hidden": 64, as `loading.default_settings` gives them). Settings in `same_results`
    ("model.recompute") change how, not what, the model computes, so they may differ."""
    if identity is None:
        return
    saved = artifacts.read_meta(path, kind="checkpoint").get("identity")
    fix = f"pass the same settings, or remove {path} to start over"
    if saved is None:
        raise mismatch(f"--resume: {path} does not record the settings it was made with; {fix}")
    mine, theirs = flatten(json.loads(json.dumps(identity))), flatten(saved)
    implied = {key: value for key, value in flatten({"config": defaults or {}}).items() if key not in theirs}
    theirs |= implied
    free = _RESUMABLE_CHANGES | {f"config.{key}" for key in same_results}
    for key in sorted(set(mine) | set(theirs)):
        if key not in free and mine.get(key) != theirs.get(key):
            raise mismatch(f"--resume: {path} was made with {key} = {theirs.get(key)!r}{PREDATES if key in implied else ''}, this run has {mine.get(key)!r}; {fix}")


def load_checkpoint(path: str, model, opt, rank: int = 0) -> _State:
    tensors, meta = artifacts.load(path, kind="checkpoint")
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    opt.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"]))
    torch.set_rng_state(tensors.get(f"rng.torch.r{rank}", tensors["rng.torch"]))
    cuda = tensors.get(f"rng.cuda.r{rank}", tensors.get("rng.cuda"))
    if cuda is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda)
    state = _State()
    for k, v in meta["state"].items():
        setattr(state, k, v)
    state.best_score = -math.inf if state.best_score is None else state.best_score
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
    state.best_state = best or None
    return state


def _flatten_optimizer(sd: dict) -> tuple[dict, dict]:
    tensors, scalars = {}, {}
    for pid, pstate in sd["state"].items():
        for key, value in pstate.items():
            if torch.is_tensor(value):
                tensors[f"opt.{pid}.{key}"] = value
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict, meta: dict) -> dict:
    state: dict = {}
    for name, value in tensors.items():
        if name.startswith("opt."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for name, value in meta["scalars"].items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": json.loads(json.dumps(meta["param_groups"]))}

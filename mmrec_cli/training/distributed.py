"""Several processes, devices and precisions for the one training loop, on PyTorch's own machinery.

Launch: `torchrun --nproc-per-node N -m mmrec_cli finetune ...` (any torchrun set-up, several
machines included), or `--nproc N` on a command, which starts torchrun itself (`launch`). Every
process loads the data and builds the same model; `loop.fit` wraps it in DistributedDataParallel,
gives each rank a share of every global batch (`shard`), and scales each rank's loss so that the
averaged gradient equals the one of a single process on the whole global batch (`loop._epoch`); a
loss whose negatives are the batch's other rows sees the whole global batch's (`batch_rows`).
Rank 0 alone writes checkpoints and artifacts; every rank validates on the full split and rank 0's
metrics are broadcast, so early-stopping decisions agree.

Precision (`fp32 | bf16 | fp16`) is torch.autocast around the loss; fp16 adds a GradScaler.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass

import torch

from mmrec_cli.data.batches import to_device
from mmrec_cli.errors import USAGE, MmrecError, bad_input

PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass
class Context:
    """Where this process stands: its rank among `world` processes and its device."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def main(self) -> bool:
        return self.rank == 0


_CTX = Context()


def current() -> Context:
    return _CTX


def launched() -> bool:
    """True inside a process started by torchrun (or any launcher that sets WORLD_SIZE)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def resolve_device(spec: str | None, local_rank: int = 0) -> str:
    """'cpu', 'cuda' (this process's local GPU), 'cuda:N', 'mps' or 'auto' -> a torch device string."""
    spec = (spec or "cpu").strip().lower()
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return "cpu"
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise bad_input(f"--device {spec}: no CUDA device is visible to this process; use --device cpu")
        index = int(spec.split(":", 1)[1]) if ":" in spec else local_rank
        if index >= torch.cuda.device_count():
            raise bad_input(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) visible (index {index})")
        return f"cuda:{index}"
    if spec == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise bad_input("--device mps: no Apple GPU is available; use --device cpu")
        return "mps"
    raise bad_input(f"--device {spec}: expected cpu, cuda, cuda:N, mps or auto")


def describe(device: str) -> str:
    """One line for people: the device a command runs on, e.g. 'cpu (2 threads)' or 'cuda:0 (NVIDIA H100)'."""
    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    if device == "cpu":
        n = torch.get_num_threads()
        return f"cpu ({n} thread{'s' if n != 1 else ''})"
    return device


@contextlib.contextmanager
def session(device: str | None = "cpu"):
    """Join the process group when launched by torchrun, pick the device; leave the group at the end."""
    global _CTX
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1")) if launched() else 1
    rank = int(os.environ.get("RANK", "0")) if world > 1 else 0
    local = int(os.environ.get("LOCAL_RANK", "0")) if world > 1 else 0
    dev = resolve_device(device, local)
    joined = False
    if world > 1 and not dist.is_initialized():
        if dev.startswith("cuda"):
            torch.cuda.set_device(torch.device(dev))
        dist.init_process_group("nccl" if dev.startswith("cuda") else "gloo")
        joined = True
    previous, _CTX = _CTX, Context(rank, world, local, dev)
    try:
        yield _CTX
        if joined:
            # leave together: a rank that tears gloo down while rank 0 still writes the artifact
            # can abort at exit ("terminate called without an active exception", seen under load)
            dist.barrier()
    finally:
        _CTX = previous
        if joined:
            dist.destroy_process_group()


def launch(nproc: int, argv: list[str] | None = None) -> None:
    """Run this very command line again under torchrun with `nproc` processes on this machine.

    The children see WORLD_SIZE and so do not launch again; they say what they do (rank 0) and what
    went wrong (any rank). A failure raises MmrecError with the failed process's exit code.
    """
    if nproc < 1:
        raise bad_input(f"--nproc {nproc}: give at least 1 process")
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    args = get_args_parser().parse_args(["--standalone", f"--nproc-per-node={nproc}", "--module", "mmrec_cli"])
    args.training_script_args = argv  # not through argparse: it would take `--nproc` for its own option
    try:
        run(args)
    except ChildFailedError as err:
        codes = [f.exitcode for _, f in sorted(err.failures.items())]
        code = next((c for c in codes if c and c > 0), 1)
        raise MmrecError(f"{len(codes)} of {nproc} processes failed (exit code {code}); see their messages above", code) from None


# ----------------------------------------------------------------------------- the training side


def shard(batches, rank: int, world: int):
    """Each rank's share of every global batch: rows rank, rank+world, ... of every per-row tensor.

    Anything else (a tuple, a number, a tensor of another length) goes whole to every rank: a model
    whose loss needs the whole global batch (AlignRec's in-batch losses) passes it that way.
    A rank whose share is empty (a last batch smaller than the world) gets row 0 with weight 0, so
    that every rank takes the same number of steps (DDP all-reduces at each one).
    """
    for batch in batches:
        rows = _rows(batch)
        idx = torch.arange(rank, rows, world)
        dummy = len(idx) == 0
        if dummy:
            idx = torch.zeros(1, dtype=torch.long)
        out = {k: (v[idx] if torch.is_tensor(v) and v.dim() > 0 and v.shape[0] == rows else v) for k, v in batch.items()}
        if dummy:
            out["_weightless"] = True
        yield out


def _rows(batch: dict) -> int:
    if torch.is_tensor(batch.get("items")):
        return batch["items"].shape[0]
    for v in batch.values():
        if torch.is_tensor(v) and v.dim() > 0:
            return v.shape[0]
    raise MmrecError("cannot split a training batch without tensors across processes",)


def count_targets(batch: dict) -> int:
    """How many targets the (mean) loss of this batch averages over: `num_targets` if the batch says,
    else the non-ignored entries of `targets`, else its rows."""
    if "num_targets" in batch:
        return int(batch["num_targets"])
    t = batch.get("targets")
    if torch.is_tensor(t):
        return int((t >= 0).sum()) if t.dtype != torch.bool else int(t.sum())
    return _rows(batch)


# ----------------------------------------------------------------------------- in-batch losses

_STAND_IN = False  # this step's share is a stand-in row (see `shard`): no rank's candidate


def stand_in(flag: bool) -> None:
    """Say, before each loss, whether this rank's share of the step is a stand-in row."""
    global _STAND_IN
    _STAND_IN = flag


class _Gather(torch.autograd.Function):
    """all_gather (W, n, ...) whose backward gives each rank the sum over ranks of its rows' gradients."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(out, x.contiguous())
        ctx.rank = dist.get_rank()
        return torch.stack(out)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rank]


def batch_rows(*local: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """The whole global batch's rows of per-row tensors that each rank computed on its share, for losses
    whose negatives are the batch's other rows: (the tensors over every rank's rows, in rank order;
    the positions (n,) of this rank's own rows among them, None in one process: the rows themselves).

    A loss with this rank's rows as anchors and all rows as candidates is the single process's loss
    restricted to these anchors, and `loop` weights each rank's mean by its share: the summed gradient
    is the single process's (rows computed elsewhere get theirs through the gather's backward). A
    stand-in share is no rank's candidate but its own. One process: the tensors and None.
    """
    n, dev = local[0].shape[0], local[0].device
    ctx = current()
    if ctx.world <= 1:
        return list(local), None
    import torch.distributed as dist

    info = [torch.zeros(2, dtype=torch.long, device=dev) for _ in range(ctx.world)]
    dist.all_gather(info, torch.tensor([n, int(not _STAND_IN)], device=dev))
    sizes, real = [int(i[0]) for i in info], [bool(i[1]) for i in info]
    taken = [sizes[k] if real[k] or k == ctx.rank else 0 for k in range(ctx.world)]
    top, out = max(sizes), []
    for x in local:
        padded = torch.cat([x, x.new_zeros(top - n, *x.shape[1:])]) if top > n else x
        every = _Gather.apply(padded)  # (W, top, ...)
        # a stand-in's slice is empty but stays in the graph: every rank runs the gather's backward
        out.append(torch.cat([x if k == ctx.rank else every[k, : taken[k]] for k in range(ctx.world)]))
    first = sum(taken[: ctx.rank])
    return out, first + torch.arange(n, device=dev)


def autocast(device: str, precision: str):
    """torch.autocast for bf16/fp16; nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def grad_scaler(device: str, precision: str):
    return torch.amp.GradScaler(torch.device(device).type, enabled=precision == "fp16")


class LossModule(torch.nn.Module):
    """What DDP wraps: forward(batch) = the stage's loss function of the model (loss, pretrain_loss...)."""

    def __init__(self, model: torch.nn.Module, loss_fn):
        super().__init__()
        self.model = model
        self._loss_fn = loss_fn

    def forward(self, batch: dict) -> torch.Tensor:
        return self._loss_fn(batch)


def wrap(model: torch.nn.Module, loss_fn, ctx: Context, probe: dict | None = None):
    """The loss function to call in training: DDP around the model when there are several processes.

    DDP all-reduces every parameter's gradient at every step and broadcasts rank 0's buffers before
    every forward. Two kinds of tensor are left out of both, as they cost the most at scale and carry
    nothing (at the pre-training set's 447,000 items: 114 MB of zero gradients and about 690 MB of features
    per step for MSM4SR):
    - parameters the loss uses on no rank's `probe` (this rank's first training batch): MSM4SR's ID
      table in pre-training, a pre-training head in fine-tuning. One process leaves them untouched too
      (no gradient, so Adam skips them); a later batch that does use one is an error (`_late_use`).
      Parameters used on some ranks only make DDP look for unused parameters at every step.
    - non-persistent buffers: the item features, read from the same files by every process.
    """
    if ctx.world <= 1:
        return loss_fn
    from torch.nn.parallel import DistributedDataParallel as DDP

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    unused = [1.0] * len(named)  # a rank without a batch uses nothing
    if probe is not None:
        with torch.random.fork_rng(devices=[torch.device(ctx.device)] if ctx.device.startswith("cuda") else []):
            grads = torch.autograd.grad(loss_fn(probe), [p for _, p in named], allow_unused=True)
        unused = [float(g is None) for g in grads]
    counts = all_sum([float(probe is None), *unused], ctx)
    blind, counts = counts[0] > 0, counts[1:]
    idle = [] if blind else [(n, p) for (n, p), c in zip(named, counts, strict=True) if c == ctx.world]
    for name, p in idle:
        p.register_hook(_late_use(name))
    persistent = set(model.state_dict())
    constant = [n for n, _ in model.named_buffers() if n not in persistent]
    wrapped = LossModule(model, loss_fn)  # DDP names its tensors from here: "model.<name>"
    DDP._set_params_and_buffers_to_ignore_for_model(wrapped, [f"model.{n}" for n in [*(n for n, _ in idle), *constant]])
    ids = [torch.device(ctx.device).index] if ctx.device.startswith("cuda") else None
    return DDP(wrapped, device_ids=ids, find_unused_parameters=blind or any(0 < c < ctx.world for c in counts))


def _late_use(name: str):
    """The gradient hook of a parameter left out of DDP: a gradient reaching it means a later batch used it."""

    def hook(grad: torch.Tensor) -> torch.Tensor:
        raise MmrecError(f"--nproc: {name} was unused by the first batch but a later batch uses it; train with --nproc 1", USAGE)

    return hook


def first_batch(batches, ctx: Context) -> dict | None:
    """This rank's first batch of an epoch, on the device (for `wrap`'s probe)."""
    for batch in shard(batches, ctx.rank, ctx.world):
        stand_in(batch.pop("_weightless", False))
        return to_device(batch, ctx.device)
    return None


def all_sum(values: list[float], ctx: Context) -> list[float]:
    """Sum a few numbers over all ranks (one all_reduce)."""
    if ctx.world <= 1:
        return values
    import torch.distributed as dist

    dev = ctx.device if ctx.device.startswith("cuda") else "cpu"
    t = torch.tensor(values, dtype=torch.float64, device=dev)
    dist.all_reduce(t)
    return t.tolist()


def broadcast(obj, ctx: Context):
    """Rank 0's object on every rank."""
    if ctx.world <= 1:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_rng(ctx: Context) -> list[dict]:
    """Every rank's RNG states, {"torch": CPU state[, "cuda": its GPU's]} (all ranks call this together)."""
    state = {"torch": torch.get_rng_state()}
    if ctx.device.startswith("cuda"):
        state["cuda"] = torch.cuda.get_rng_state(torch.device(ctx.device))
    if ctx.world <= 1:
        return [state]
    import torch.distributed as dist

    out = [None] * ctx.world
    dist.all_gather_object(out, state)
    return out

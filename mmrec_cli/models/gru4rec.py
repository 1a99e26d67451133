"""GRU4Rec: a recurrent network over item IDs (Hidasi et al., ICLR 2016; Tan et al., DLRS 2016).

The ID-only recurrent baseline, laid out as RecBole's GRU4Rec:

    e_t = Dropout(E[v_t])                      item embedding of the t-th item, dropout on the input
    h_t = GRU(e_t, h_{t-1})                    Hidasi et al. eq. (1)-(4), `layers` stacked layers, no biases
    u   = W h_n + b                            dense from the hidden size back to the embedding size
    score(u, i) = u . E[i]                     the (tied) item embedding table scores every item

and cross-entropy over all items of the next item. Tan et al.'s data augmentation makes every prefix
of a user's training sequence one example whose target is the next item; RecBole trains on these
prefixes and so does `instances = "prefixes"` (the default: `train.batch_size` counts prefixes, as
RecBole's train_batch_size). `instances = "windows"` puts a loss at every position of a user's window
instead (`mmrec_cli.data.batches`, as SASRec here): the GRU is causal, so this is the same set of
(prefix -> next item) examples, with `train.batch_size` counting windows.

PyTorch's GRU applies the reset gate after the recurrent product (r * (U h)) where eq. (3) applies it
before (U (r * h)), and swaps z with 1 - z in eq. (1); RecBole uses the same nn.GRU.

Config fields and their RecBole keys: max_len = MAX_ITEM_LIST_LENGTH, embedding = embedding_size,
hidden = hidden_size, layers = num_layers, dropout = dropout_prob. Initialisation as RecBole:
Xavier-normal item embeddings, Xavier-uniform weights of the first GRU layer, PyTorch's defaults elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmrec_cli.data import batches as B
from mmrec_cli.errors import out_of_range
from mmrec_cli.models import MAX_LEN, ModelSpec


@dataclass
class Config:
    max_len: int = MAX_LEN  # MAX_ITEM_LIST_LENGTH: the last max_len items of a history are read
    embedding: int = 64  # embedding_size: item embeddings and the user vector
    hidden: int = 128  # hidden_size: the GRU state
    layers: int = 1  # num_layers: stacked GRU layers
    dropout: float = 0.3  # dropout_prob: on the input item embeddings
    # prefixes: one example per prefix of a training sequence (RecBole) | windows: a loss at every position
    instances: Literal["prefixes", "windows"] = "prefixes"


class Model(nn.Module):
    def __init__(self, cfg: Config, num_items: int, features: dict | None = None):
        super().__init__()
        if cfg.layers < 1:
            raise out_of_range("config: model.layers", cfg.layers, "1 or more (a GRU needs a layer)")
        if cfg.embedding < 1:
            raise out_of_range("config: model.embedding", cfg.embedding, "1 or more")
        self.cfg = cfg
        self.item_emb = nn.Embedding(num_items + 1, cfg.embedding, padding_idx=0)  # row 0 = padding
        self.drop = nn.Dropout(cfg.dropout)
        self.gru = nn.GRU(cfg.embedding, cfg.hidden, cfg.layers, bias=False, batch_first=True)
        self.dense = nn.Linear(cfg.hidden, cfg.embedding)
        nn.init.xavier_normal_(self.item_emb.weight)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()  # the padding row stays zero (it never reaches a position that is read)
        nn.init.xavier_uniform_(self.gru.weight_ih_l0)
        nn.init.xavier_uniform_(self.gru.weight_hh_l0)

    @property
    def max_len(self) -> int:
        return self.cfg.max_len

    def encode(self, items: torch.Tensor) -> torch.Tensor:
        """The output vector at every position (B, L, embedding) of right-padded item sequences (B, L).

        Position t depends on items 0..t only, so the padding after a row's end changes nothing before it."""
        L = items.shape[1]
        assert L <= self.cfg.max_len, f"sequence length {L} > max_len {self.cfg.max_len}"
        x = self.drop(self.item_emb(items))  # (B, L, E)
        # packed: the GRU steps over each row's real items only (most histories are far shorter than L)
        lengths = (items > 0).sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)  # eq. (1)-(4)
        h = unpack(out, lengths, L)  # (B, L, hidden)
        return self.dense(h)  # (B, L, embedding); zeros in, the dense bias out after a row's end

    def users(self, batch: dict) -> torch.Tensor:
        """The output vector at each row's last item (B, embedding)."""
        h = self.encode(batch["items"])  # (B, L, E)
        last = (batch["lengths"] - 1).clamp(min=0)
        return h[torch.arange(h.shape[0]), last]  # (B, E)

    def loss(self, batch: dict) -> torch.Tensor:
        """Cross-entropy over all items at every position with a target (B, L) >= 0."""
        h = self.encode(batch["items"])  # (B, L, E)
        keep = batch["targets"] >= 0
        logits = h[keep] @ self.item_emb.weight[1:].T  # (P, N) for the P positions with a target
        return F.cross_entropy(logits, batch["targets"][keep])

    def score_users(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return users @ self.item_emb.weight[items + 1].T  # (B, E) x (n, E) -> (B, n)


def unpack(packed: nn.utils.rnn.PackedSequence, lengths: torch.Tensor, total_length: int) -> torch.Tensor:
    """The (B, total_length, H) batch-first padding of a packed sequence, zeros after each row's end.

    nn.utils.rnn.pad_packed_sequence gives the same values, but it writes one time step at a time into the
    padded tensor, and its backward copies the whole padded gradient once per step: for 2,048 rows of up to 50
    items, most of a training step's time. Here one gather places every packed row, so the backward is one
    scatter; each packed row lands in one place, so the values and gradients are the same bits."""
    data, batch_sizes = packed.data, packed.batch_sizes  # (sum of lengths, H), (T,) rows still running at step t
    offsets = (torch.cumsum(batch_sizes, 0) - batch_sizes).to(data.device)  # (T,) first packed row of step t
    rank = packed.unsorted_indices  # (B,) each row's place in the length-sorted order
    steps = torch.arange(total_length, device=data.device)
    real = steps[None, :] < lengths.to(data.device)[:, None]  # (B, L) positions inside each row
    where = offsets[steps.clamp(max=len(offsets) - 1)][None, :] + rank[:, None]  # (B, L) packed row of (b, t)
    h = data.new_zeros(len(lengths), total_length, data.shape[1])
    h[real] = data[where[real]]
    return h


def train_batches(ds, cfg: Config, train_cfg, epoch: int, stage: str = "finetune"):
    """Shuffled batches of `cfg.instances`, each with `targets` (B, L); the order depends only on (seed, epoch)."""
    bs, seed = train_cfg.batch_size, train_cfg.seed
    if cfg.instances == "windows":
        yield from B.train_batches(ds, cfg.max_len, bs, seed, epoch)
        return
    for batch in B.prefix_batches(ds, cfg.max_len, bs, seed, epoch):
        yield batch | {"targets": last_targets(batch)}


def last_targets(batch: dict) -> torch.Tensor:
    """(B, L) targets of a prefix batch: its `target` at the last real position, IGNORE elsewhere."""
    targets = torch.full_like(batch["items"], B.IGNORE)
    targets[torch.arange(len(targets)), batch["lengths"] - 1] = batch["target"]
    return targets


SPEC = ModelSpec(name="gru4rec", config=Config, build=Model, train_batches=train_batches)

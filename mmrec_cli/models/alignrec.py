"""AlignRec: aligning and training in multimodal recommendation (Liu et al., CIKM 2024).

A graph-based (non-sequential) recommender trained in two decoupled stages:

1. `mmrec pretrain alignrec` -- inter-content alignment (ICA). The paper pre-trains BEiT-3 on raw
   pixels and words with masked image and masked language modelling. mmrec's multimodal item
   encoder works on the item's text and image *feature vectors* instead (e.g. CLIP ViT-B/32, 512-d
   each): every vector is standardised and cut into `enc_chunks` tokens (contiguous slices of the
   vector), the tokens of both modalities go through one transformer, and the encoder learns to
   regress masked tokens of one modality from that modality's remaining tokens and all tokens of the
   other (L_ICA = L_MIM + L_MLM: image tokens masked with text intact, then text tokens masked with
   image intact; MSE on the masked tokens). The item's aligned representation h_enc is the mean of
   the encoder's output states with nothing masked.
2. `mmrec finetune alignrec` -- recommendation with the encoder frozen (h_enc computed once):
     ID view:  LightGCN over the user-item graph of the TRAIN interactions (`layers` layers, torch
               sparse ops): H_id = mean(E, A E, ..., A^L E), split into h_id^u, h_id^i.
     MM view:  h_con^i = e_id^i * sigmoid(W_g W_t h_enc^i); h_mm^i = S^{item_layers} h_con with S the
               item-item kNN graph of h_enc (top-`knn_k` cosine neighbours per item, computed in
               chunks, symmetric-normalised, fixed); h_mm^u = R_hat h_mm^i.
     Fusion:   h = h_id + h_mm (addition); score(u, i) = h^u . h^i.
   Loss: BPR + alpha * CCA + beta * UIA + lam * REG + emb_l2 * ||batch embeddings||^2 / 2B, with
     CCA  in-batch InfoNCE (cosine / temperature) between h_mm and h_id, of the batch's positive
          items and of its users;
     UIA  1 - cos(h^u, h^i) of each user and positive item;
     REG  ||C(h_mm^i, h_mm^j) - sg(C(h_enc^i, h_enc^j))||_F / B over the batch's positive items
          (C = cosine; the official code uses a dot product on the left side).

Defaults follow the official code: embedding 64, 2 LightGCN layers, 1 item-graph layer, k = 10,
temperature 0.2, UIA weight 0.1, embedding L2 1e-4, batch 2048 (example config), early stopping on
validation Recall@20 (`examples/configs/alignrec.json` sets train.metric). `multimodal = false`
turns the MM view (and CCA / REG) off: a plain LightGCN with BPR, the baseline AlignRec is measured
against. `content = "raw"` skips the pre-trained encoder and uses [l2norm(std(text)) ; l2norm(std(image))]
as h_enc, std = standardised per dimension over the items (the ablation "without ICA"). On the
example Scientific data (frozen CLIP ViT-B/32 features) that is the better h_enc, by the zero-shot
probe and by validation Recall@20, so `examples/configs/alignrec.json` uses it;
`bench/mmmlp_alignrec_quality.sh` reports both.

With one modality (text-only data), ICA masks and regresses that modality's tokens from its own
remaining tokens, and h_enc (encoder or raw) is built from it alone; not in the paper.

The model needs the user count and the training graph, which the standard Model(cfg, num_items,
features) call does not pass. The count comes at construction: its spec says `needs_users=True` and
the recommendation stages (`stages.finetune`, `stages.transfer`) then build it with the extra
keyword `num_users=ds.num_users` (other models are built as before); the user table is created
there, once, at its final size, before any optimizer or DistributedDataParallel sees the parameters.
Pre-training builds it without users (ICA needs no user table). The TRAIN (user, item) pairs come
in every batch (`train_batches`, the same whole graph on every process) and are stored as buffers
by the first loss; a graph of another user count is refused. A trained artifact thus holds its
graph and user table and scores `batch["user"]` with no dataset at hand (`load_state_dict` sizes
the table from the artifact's state).

Several processes (`--nproc`): every process propagates over the whole graph and takes its share of
each global batch. BPR, UIA and the L2 term are means over the batch's rows, so the shares' scaled
losses add up to the global batch's. CCA and REG are *in-batch* losses (InfoNCE negatives and the
pairwise similarity matrix range over the whole batch) that a share cannot compute; each batch
therefore also carries the global batch's (users, positives) as `in_batch`, a tuple that
`distributed.shard` leaves whole, and every process computes CCA and REG over the global batch. The
per-process loss scaling weights these identical terms by shares that sum to one, so the gradient
is the one of a single process on the global batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmrec_cli.errors import MISMATCH, MmrecError, bad_input, mismatch
from mmrec_cli.models import ModelSpec
from mmrec_cli.models import alignrec_graph as G

MODALITIES: tuple[str, ...] = ("text", "image")


@dataclass
class Config:
    embedding: int = 64
    layers: int = 2  # LightGCN layers over the user-item graph
    item_layers: int = 1  # propagation steps over the item-item kNN graph
    knn_k: int = 10
    temperature: float = 0.2
    alpha: float = 0.01  # CCA weight (official grid 1e-4 .. 0.1)
    beta: float = 0.1  # UIA weight
    lam: float = 0.1  # REG weight (official grid 0.1 .. 0.5)
    emb_l2: float = 1e-4
    multimodal: bool = True  # False = plain LightGCN (no MM view, no CCA / REG)
    content: str = "encoder"  # "encoder" (from `mmrec pretrain alignrec`, via --init) or "raw"
    enc_chunks: int = 8  # tokens per modality
    enc_hidden: int = 64
    enc_layers: int = 2
    enc_heads: int = 4
    enc_dropout: float = 0.1
    mask_ratio: float = 0.5


class Model(nn.Module):
    max_len = 1  # reads no history: a user is scored from their row of the trained graph (batch["user"])

    def __init__(self, cfg: Config, num_items: int, features: dict | None = None, num_users: int = 0):
        """`num_users` sizes the user table (0: none, for pre-training or to load a state into)."""
        super().__init__()
        if cfg.content not in ("encoder", "raw"):
            raise bad_input(f"alignrec: model.content must be 'encoder' or 'raw', not {cfg.content!r}")
        feats = features or {}
        self.mods = [m for m in MODALITIES if m in feats]  # one modality: h_enc and ICA over it alone
        if not self.mods:
            raise bad_input("alignrec reads text and/or image features; the features file has neither")
        self.cfg = cfg
        self.num_items = num_items
        dims = {}
        for m in self.mods:
            x = feats[m].float()
            dims[m] = x.shape[1]
            # frozen inputs, standardised per dimension (CLIP vectors share a large common direction),
            # rebuilt from the features file (not stored in the model artifact)
            self.register_buffer(f"feat_{m}", (x - x.mean(0)) / x.std(0).clamp_min(1e-6), persistent=False)
        self.encoder = ItemEncoder(cfg, dims)
        self.register_buffer("encoder_trained", torch.zeros((), dtype=torch.uint8))
        self.item_emb = nn.Parameter(nn.init.xavier_uniform_(torch.empty(num_items, cfg.embedding)))
        self.register_buffer("ui_users", torch.zeros(0, dtype=torch.long))
        self.register_buffer("ui_items", torch.zeros(0, dtype=torch.long))
        enc_dim = cfg.enc_hidden if cfg.content == "encoder" else sum(dims.values())
        self.mm_trs = nn.Linear(enc_dim, cfg.embedding)
        self.gate = nn.Sequential(nn.Linear(cfg.embedding, cfg.embedding), nn.Sigmoid())
        # drawn last: the other layers' initial values do not depend on the number of users
        users = torch.empty(num_users, cfg.embedding)
        self.user_emb = nn.Parameter(nn.init.xavier_uniform_(users) if num_users else users)
        self._clear()

    # ----- state that is derived, not learned -----------------------------------------------------

    def _clear(self) -> None:
        self._graph = None  # (A_hat, R_hat)
        self._content = None  # (h_enc, S)
        self._final = None  # (h_u, h_i) of every user and item, propagated once in eval mode

    def train(self, mode: bool = True):
        self._final = None
        return super().train(mode)

    def load_state_dict(self, state, strict: bool = True, assign: bool = False):
        """Size the user table and graph buffers to the state's before loading; drop derived caches."""
        with torch.no_grad():
            if "user_emb" in state:
                self.user_emb.data = torch.empty_like(state["user_emb"], device=self.item_emb.device)
            for name in ("ui_users", "ui_items"):
                if name in state:
                    setattr(self, name, torch.empty_like(state[name], device=self.item_emb.device))
        self._clear()
        return super().load_state_dict(state, strict=strict, assign=assign)

    def attach(self, users: np.ndarray, items: np.ndarray, num_users: int) -> None:
        """Take the TRAIN graph (once): store its pairs. The user table was sized at construction."""
        if num_users != self.user_emb.shape[0]:
            raise mismatch(
                f"alignrec: the model was built for {self.user_emb.shape[0]} users but the training graph has {num_users}; "
                "build it with Model(cfg, num_items, features, num_users=ds.num_users) (as `mmrec finetune` does)"
            )
        if self.ui_users.numel() == len(users):
            return
        dev = self.item_emb.device
        self.ui_users = torch.as_tensor(users, dtype=torch.long, device=dev)
        self.ui_items = torch.as_tensor(items, dtype=torch.long, device=dev)
        self._graph = None

    def graph(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._graph is None:
            if self.ui_users.numel() == 0:
                raise MmrecError("alignrec: the model has no user-item graph yet; train it with `mmrec finetune alignrec`", MISMATCH)
            self._graph = G.normalized_adjacency(self.ui_users, self.ui_items, self.user_emb.shape[0], self.num_items)
        return self._graph

    def content(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(h_enc (N, d), item-item kNN graph S), from the frozen encoder or the raw features."""
        if self._content is None:
            with torch.no_grad():
                if self.cfg.content == "raw":
                    h = torch.cat([F.normalize(getattr(self, f"feat_{m}"), dim=1) for m in self.mods], dim=1)
                else:
                    if not int(self.encoder_trained):
                        raise bad_input(
                            "alignrec: the item encoder is not pre-trained; run `mmrec pretrain alignrec` and pass its "
                            "output with --init, or use the raw features with --set model.content=raw"
                        )
                    h = self.encoder.encode_all({m: getattr(self, f"feat_{m}") for m in self.mods})
                self._content = (h, G.knn_graph(h, self.cfg.knn_k))
        return self._content

    # ----- the model ----------------------------------------------------------------------------

    def forward_all(self) -> dict:
        """Every user's and item's representations: id_u, id_i, and with the MM view mm_u, mm_i, h_enc."""
        a_hat, r_hat = self.graph()
        U = self.user_emb.shape[0]
        ids = G.propagate(a_hat, torch.cat([self.user_emb, self.item_emb]), self.cfg.layers)
        out = {"id_u": ids[:U], "id_i": ids[U:]}
        out["u"], out["i"] = out["id_u"], out["id_i"]
        if self.cfg.multimodal:
            h_enc, s = self.content()
            mm_i = self.item_emb * self.gate(self.mm_trs(h_enc))
            for _ in range(self.cfg.item_layers):
                mm_i = torch.sparse.mm(s, mm_i)
            mm_u = torch.sparse.mm(r_hat, mm_i)
            out |= {"mm_u": mm_u, "mm_i": mm_i, "h_enc": h_enc, "u": out["id_u"] + mm_u, "i": out["id_i"] + mm_i}
        return out

    def loss(self, batch: dict) -> torch.Tensor:
        self.attach(*batch["graph"])
        cfg = self.cfg
        u, p, n = batch["user"], batch["pos"], batch["neg"]
        r = self.forward_all()
        hu, hp, hn = r["u"][u], r["i"][p], r["i"][n]
        total = bpr_loss(hu, hp, hn) + cfg.emb_l2 * (hu.square().sum() + hp.square().sum() + hn.square().sum()) / (2 * len(u))
        if cfg.beta:
            total = total + cfg.beta * uia_loss(hu, hp)
        gu, gp = batch.get("in_batch", (u, p))  # the global batch's rows, for the in-batch losses
        if cfg.multimodal and cfg.alpha:
            cca = info_nce(r["mm_i"][gp], r["id_i"][gp], cfg.temperature) + info_nce(r["mm_u"][gu], r["id_u"][gu], cfg.temperature)
            total = total + cfg.alpha * cca
        if cfg.multimodal and cfg.lam:
            total = total + cfg.lam * similarity_reg(r["mm_i"][gp], r["h_enc"][gp])
        return total

    def users(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(h^u (B, d) of the batch's users, h^i (N, d) of every item): the graph is propagated once per
        batch while training, once for all batches in eval mode (the weights no longer change)."""
        if self.training:
            r = self.forward_all()
            return r["u"][batch["user"]], r["i"]
        if self._final is None:
            r = self.forward_all()
            self._final = (r["u"], r["i"])
        hu, hi = self._final
        return hu[batch["user"]], hi

    def score_users(self, users: tuple[torch.Tensor, torch.Tensor], items: torch.Tensor) -> torch.Tensor:
        hu, hi = users
        return hu @ hi[items].T  # (B, n)

    def pretrain_loss(self, batch: dict) -> torch.Tensor:
        """L_ICA = L_MIM + L_MLM on a batch of items."""
        self.encoder_trained.fill_(1)
        idx = batch["item_index"]
        return self.encoder.masked_loss({m: getattr(self, f"feat_{m}")[idx] for m in self.mods}, self.cfg.mask_ratio)


class ItemEncoder(nn.Module):
    """A transformer over the chunk tokens of an item's text and image feature vectors."""

    def __init__(self, cfg: Config, dims: dict):
        super().__init__()
        C, H = cfg.enc_chunks, cfg.enc_hidden
        self.chunks = C
        self.width = {m: math.ceil(d / C) for m, d in dims.items()}  # feature dims per token (zero-padded)
        self.embed = nn.ModuleDict({m: nn.Linear(w, H) for m, w in self.width.items()})
        self.head = nn.ModuleDict({m: nn.Linear(H, w) for m, w in self.width.items()})
        self.pos = nn.Parameter(torch.randn(len(dims) * C, H) * 0.02)  # position and modality at once
        self.mask_token = nn.Parameter(torch.randn(H) * 0.02)
        layer = nn.TransformerEncoderLayer(H, cfg.enc_heads, 4 * H, cfg.enc_dropout, activation="gelu", batch_first=True, norm_first=True)
        self.body = nn.TransformerEncoder(layer, cfg.enc_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(H)

    def tokens(self, m: str, x: torch.Tensor) -> torch.Tensor:
        w = self.width[m]
        x = F.pad(x, (0, self.chunks * w - x.shape[1]))
        return x.view(x.shape[0], self.chunks, w)  # (B, C, w)

    def forward(self, toks: dict, masks: dict | None = None) -> torch.Tensor:
        parts = []
        for m, t in toks.items():
            e = self.embed[m](t)
            if masks and m in masks:
                e = torch.where(masks[m][..., None], self.mask_token, e)
            parts.append(e)
        return self.norm(self.body(torch.cat(parts, dim=1) + self.pos))  # (B, M*C, H)

    def masked_loss(self, x: dict, ratio: float) -> torch.Tensor:
        toks = {m: self.tokens(m, v) for m, v in x.items()}
        B, C = next(iter(toks.values())).shape[:2]
        total = 0.0
        for k, m in enumerate(toks):
            dev = toks[m].device
            mask = torch.rand(B, C, device=dev) < ratio
            mask[torch.arange(B, device=dev), torch.randint(C, (B,), device=dev)] = True  # at least one masked token per item
            h = self(toks, {m: mask})[:, k * C : (k + 1) * C]
            err = (self.head[m](h) - toks[m]).square().mean(-1)  # (B, C)
            total = total + err[mask].mean()
        return total

    @torch.no_grad()
    def encode_all(self, x: dict, batch: int = 4096) -> torch.Tensor:
        was = self.training
        self.eval()
        n = next(iter(x.values())).shape[0]
        out = [self({m: self.tokens(m, v[s : s + batch]) for m, v in x.items()}).mean(1) for s in range(0, n, batch)]
        self.train(was)
        return torch.cat(out)


# ----- losses (pure functions) ----------------------------------------------------------------------


def bpr_loss(u: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """-mean log sigmoid(u.pos - u.neg)."""
    return -F.logsigmoid((u * pos).sum(-1) - (u * neg).sum(-1)).mean()


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """In-batch InfoNCE: row i of a against every row of b, positive b_i, cosine / temperature."""
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    logits = a @ b.T / temperature
    return F.cross_entropy(logits, torch.arange(len(a), device=a.device))


def uia_loss(u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
    """1 - mean cosine of user and item."""
    return 1 - F.cosine_similarity(u, i, dim=-1).mean()


def similarity_reg(h_mm: torch.Tensor, h_enc: torch.Tensor) -> torch.Tensor:
    """||C(h_mm) - sg(C(h_enc))||_F / B, C the in-batch cosine-similarity matrix."""
    a, b = F.normalize(h_mm, dim=1), F.normalize(h_enc, dim=1).detach()
    return torch.linalg.matrix_norm(a @ a.T - b @ b.T) / len(a)


# ----- batches --------------------------------------------------------------------------------------


def train_batches(ds, cfg: Config, train_cfg, epoch: int, stage: str = "finetune"):
    """Pre-training: shuffled batches of item indices. Fine-tuning: (user, positive, negative) triples
    over the TRAIN interactions, one uniformly drawn negative (not in the user's train items) each;
    the order and the negatives depend only on (seed, epoch)."""
    rng = np.random.default_rng([train_cfg.seed, epoch])
    bs = train_cfg.batch_size
    if stage == "pretrain":
        order = torch.from_numpy(rng.permutation(ds.num_items))
        for s in range(0, len(order), bs):
            yield {"item_index": order[s : s + bs]}
        return
    users, items = G.train_pairs(ds)
    neg = sample_negatives(users, items, ds.num_items, rng)
    order = rng.permutation(len(users))
    graph = (users, items, ds.num_users)
    for s in range(0, len(order), bs):
        idx = order[s : s + bs]
        user, pos = torch.from_numpy(users[idx]), torch.from_numpy(items[idx])
        # tuples are not per-row tensors: under --nproc every process gets them whole (see the module doc)
        yield {"user": user, "pos": pos, "neg": torch.from_numpy(neg[idx]), "graph": graph, "in_batch": (user, pos)}


def sample_negatives(users: np.ndarray, items: np.ndarray, num_items: int, rng, tries: int = 100) -> np.ndarray:
    """One item per pair that the pair's user has not interacted with (in these pairs)."""
    seen = np.unique(users * num_items + items)
    neg = rng.integers(0, num_items, len(users))
    for _ in range(tries):
        bad = np.isin(users * num_items + neg, seen, assume_unique=False)
        if not bad.any():
            break
        neg[bad] = rng.integers(0, num_items, int(bad.sum()))
    return neg


# ----- the zero-shot feature probe (AlignRec's intermediate protocol) ----------------------------------


class FeatureProbe(nn.Module):
    """Recommends with item features alone: user = mean of the L2-normalised features of their history
    items, score = cosine to every item's normalised features. No training."""

    max_len = 1 << 30  # the whole history

    def __init__(self, table: torch.Tensor):
        super().__init__()
        t = F.normalize(table.float(), dim=1)
        self.register_buffer("table", torch.cat([torch.zeros(1, t.shape[1]), t]))  # row 0 = padding

    def users(self, batch: dict) -> torch.Tensor:
        hist = batch["items"]  # (B, L) item index + 1, 0 = padding
        return F.normalize(self.table[hist].sum(1), dim=1)  # (B, d) the mean's direction

    def score_users(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return users @ self.table[items + 1].T


def probe(ds, features: dict, split: str = "valid", ks=(5, 10, 20, 50), mask_history: bool | None = None) -> dict:
    """Metrics of FeatureProbe for each modality of `features` alone and for all of them concatenated
    (each L2-normalised first): {"image": {...}, "text": {...}, "image+text": {...}}."""
    from mmrec_cli.evaluation.ranking import EvalConfig, evaluate

    mask = ds.protocol == "ratio" if mask_history is None else mask_history
    cfg = EvalConfig(split=split, ks=tuple(ks), mask_history=mask)
    names = sorted(k for k in features if "_" not in k and features[k].dim() == 2)
    tables = {m: features[m] for m in names}
    if len(names) > 1:
        tables["+".join(names)] = torch.cat([F.normalize(features[m].float(), dim=1) for m in names], dim=1)
    return {name: evaluate(FeatureProbe(t), ds, cfg)[0] for name, t in tables.items()}


SPEC = ModelSpec(
    name="alignrec",
    config=Config,
    build=Model,
    train_batches=train_batches,
    modalities=MODALITIES,
    architecture=("enc_chunks", "enc_hidden", "enc_layers", "enc_heads"),  # the pre-trained item encoder
    needs_users=True,
    train_defaults={"metric": "recall@20"},  # the official code's early stopping
    fresh=("item_emb", "user_emb", "ui_users", "ui_items", "mm_trs."),  # mm_trs reads h_enc, whose width depends on `content`
)

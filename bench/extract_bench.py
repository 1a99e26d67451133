"""Feature extraction figures: text items/s of `mmrec extract --text bert` (the embedded MiniLM) against
sentence-transformers' own `encode` of the same model, same texts (the example data's 1,585 item texts) and
same batch size, in one process; then image items/s of a ViT-B-32-sized random CLIP on CPU.

    .venv/bin/python bench/extract_bench.py [--batch-size 64] [--rounds 3] [--images 64] [--threads 0] [--precision auto]

Both text sides are timed end to end (model load included; mmrec also reads the items file and writes the
artifact) and encode-only; the rounds alternate the two so a busy machine slows both alike, and the best
round of each is printed, with the arithmetic rate each side reaches (the encoder's multiply-adds for these texts' token
counts, over its seconds) beside this machine's rate on one large matmul in the same precision. --precision is mmrec's (`extract --precision`; sentence-transformers stays fp32), and the
lowest cosine of an item's mmrec vector to its sentence-transformers vector is printed with it. Needs sentence-transformers (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
EXAMPLE = os.path.join(HERE, "..", "examples", "scientific")


def example_texts() -> list[str]:
    from mmrec_cli.io import unisrec

    texts = unisrec.read_text(EXAMPLE)
    return [texts.get(iid, "") for iid in unisrec.read_index(unisrec.locate(EXAMPLE)[0] / "Scientific.item2index")]


def mmrec_round(items: str, out: str, texts: list[str], batch_size: int, numbers: str) -> tuple[float, float, object]:
    """(end-to-end seconds of the library's extract, encode-only seconds, vectors)."""
    from mmrec_cli.features import precision, runner
    from mmrec_cli.features.extract import Hooks, Options, extract
    from mmrec_cli.features.text import load_bert
    from mmrec_cli.io import feature_file as features

    t0 = time.perf_counter()
    extract(items, out, Options(text="bert", batch_size=batch_size, precision=numbers), hooks=Hooks(note=lambda msg: None))
    total = time.perf_counter() - t0
    enc = load_bert(None, "auto", None, 0, "cpu", precision.resolve(numbers, "cpu"))
    t0 = time.perf_counter()
    runner.run("text", texts, enc, batch_size)  # all texts, as sentence-transformers gets them
    encode = time.perf_counter() - t0
    return total, encode, features.load(out)[0]["text"]


def st_round(texts: list[str], batch_size: int) -> tuple[float, float, object]:
    from sentence_transformers import SentenceTransformer

    from mmrec_cli.features.text import minilm_dir

    t0 = time.perf_counter()
    model = SentenceTransformer(str(minilm_dir()), device="cpu")
    t1 = time.perf_counter()
    vecs = model.encode(texts, batch_size=batch_size, convert_to_numpy=True)
    t2 = time.perf_counter()
    return t2 - t0, t2 - t1, vecs


def text_bench(batch_size: int, rounds: int, numbers: str) -> dict:
    import numpy as np

    texts = example_texts()
    tmp = tempfile.mkdtemp(prefix="mmrec-bench-")
    items = os.path.join(tmp, "items.jsonl")
    with open(items, "w", encoding="utf-8") as f:
        for i, t in enumerate(texts):
            f.write(json.dumps({"item_id": str(i), "text": t}) + "\n")
    mm, st = [], []
    for _ in range(rounds):
        mm.append(mmrec_round(items, os.path.join(tmp, "f.safetensors"), texts, batch_size, numbers))
        st.append(st_round(texts, batch_size))
    a, b = mm[-1][2], st[-1][2]
    diff = float(np.abs(a - b).max())
    cosine = float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())
    n = len(texts)
    best = lambda runs, k: min(r[k] for r in runs)  # noqa: E731
    med = lambda runs, k: statistics.median(r[k] for r in runs)  # noqa: E731
    return {
        "texts": n,
        "batch_size": batch_size,
        "rounds": rounds,
        "mmrec_extract_items_per_s": round(n / best(mm, 0), 1),
        "st_load_encode_items_per_s": round(n / best(st, 0), 1),
        "mmrec_encode_items_per_s": round(n / best(mm, 1), 1),
        "st_encode_items_per_s": round(n / best(st, 1), 1),
        "median_encode_seconds": {"mmrec": round(med(mm, 1), 2), "sentence_transformers": round(med(st, 1), 2)},
        "max_abs_diff_vs_sentence_transformers": diff,
        "min_cosine_vs_sentence_transformers": round(cosine, 6),
    }


def encoder_gflop(texts: list[str]) -> float:
    """Floating-point operations (x 1e9) of one MiniLM pass over `texts`: the dense layers per token and the
    attention per pair of tokens of a text, every layer (embeddings, norms and softmax left out)."""
    import numpy as np

    from mmrec_cli.features.text import load_bert

    enc = load_bert(None, "auto", None, 0, "cpu")
    c = enc.model.config
    lengths = enc.prepare(texts)[1].astype(np.float64)
    dense = 2 * (4 * c.hidden_size**2 + 2 * c.hidden_size * c.intermediate_size)  # q, k, v, out; the feed-forward
    attention = 2 * 2 * c.hidden_size * (lengths**2).sum()  # scores and the weighted sum
    return c.num_hidden_layers * (dense * lengths.sum() + attention) / 1e9


def matmul_gflops(numbers: str, n: int = 2048, repeat: int = 10) -> float:
    """This machine's rate on an n x n matmul in `numbers` (fp32, bf16, fp16), the best of `repeat`."""
    import torch

    from mmrec_cli.features import precision

    a = torch.randn(n, n).to(precision.dtype(numbers))
    b = torch.randn(n, n).to(precision.dtype(numbers))
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def image_bench(count: int, batch_size: int) -> dict:
    import numpy as np
    from PIL import Image

    from mmrec_cli.features.extract import Hooks, Options, extract

    tmp = tempfile.mkdtemp(prefix="mmrec-bench-img-")
    rng = np.random.default_rng(0)
    with open(os.path.join(tmp, "items.jsonl"), "w") as f:
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(os.path.join(tmp, f"{i}.jpg"), quality=90)
            f.write(json.dumps({"item_id": str(i), "images": f"{i}.jpg"}) + "\n")
    timing = extract(
        os.path.join(tmp, "items.jsonl"), os.path.join(tmp, "f.safetensors"),
        Options(image="clip", clip_model="ViT-B-32", clip_pretrained="none", batch_size=batch_size), hooks=Hooks(note=lambda m: None),
    )
    return {"images": count, "image_size": "400x300 JPEG -> 224", "batch_size": batch_size, "image_items_per_s": round(count / timing["image"], 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--precision", default="auto", help="mmrec's extract --precision (auto, fp32, bf16, fp16)")
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(json.dumps({"torch_threads": torch.get_num_threads(), "cpus": os.cpu_count()}))
    from mmrec_cli.features import precision

    numbers = precision.resolve(args.precision, "cpu")
    text = text_bench(args.batch_size, args.rounds, args.precision)
    gflop, peak = encoder_gflop(example_texts()), matmul_gflops(numbers)
    text |= {
        "encoder_gflop": round(gflop, 1),
        "mmrec_gflops": round(gflop * text["mmrec_encode_items_per_s"] / text["texts"], 1),
        "st_gflops": round(gflop * text["st_encode_items_per_s"] / text["texts"], 1),
        f"matmul_2048_{numbers}_gflops": round(peak, 1),
    }
    print(json.dumps(text, indent=1))
    verdict = "faster" if text["mmrec_encode_items_per_s"] > text["st_encode_items_per_s"] else "NOT faster"
    print(f"text (MiniLM, {text['texts']} texts, batch {args.batch_size}): mmrec ({numbers}) {text['mmrec_encode_items_per_s']} items/s vs "
          f"sentence-transformers {text['st_encode_items_per_s']} items/s encode-only -> mmrec is {verdict}; end to end "
          f"{text['mmrec_extract_items_per_s']} vs {text['st_load_encode_items_per_s']} items/s; lowest cosine of an item's "
          f"two vectors {text['min_cosine_vs_sentence_transformers']}")
    print(f"arithmetic: {text['encoder_gflop']} GFLOP for these texts; mmrec {text['mmrec_gflops']} GFLOP/s, sentence-transformers "
          f"{text['st_gflops']} GFLOP/s, one 2048 x 2048 {numbers} matmul on this machine {peak:.1f} GFLOP/s")
    if args.images:
        img = image_bench(args.images, min(args.batch_size, 32))
        print(json.dumps(img, indent=1))
        print(f"image (random ViT-B-32 on CPU): {img['image_items_per_s']} items/s")


if __name__ == "__main__":
    main()

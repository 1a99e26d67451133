"""extract --precision: how auto resolves, float32 storage, agreement with fp32, and the refusals."""

from __future__ import annotations

import numpy as np
from _cli import error_line, run
from _tiny_models import write_items

from mmrec_cli.features import precision
from mmrec_cli.features.precision import cpu_has_native_bf16  # the real one (conftest replaces the module's)
from mmrec_cli.io import feature_file as F

ITEMS = [
    {"item_id": "a", "text": "Red glue bottle. Waterproof adhesive, 8 ounce."},
    {"item_id": "b", "text": "steel screw, heavy duty bolt"},
    {"item_id": "c", "text": "a violin bow with horse hair"},
]


def test_cpu_flags_say_whether_bf16_is_native(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n")
    assert cpu_has_native_bf16(info) is False
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert cpu_has_native_bf16(info) is True
    info.write_text("flags\t\t: fpu avx2 amx_tile amx_bf16\n")
    assert cpu_has_native_bf16(info) is True
    assert cpu_has_native_bf16(tmp_path / "missing") is False


def test_auto_is_bf16_only_on_a_cpu_that_computes_it_natively(monkeypatch):
    assert precision.resolve("auto", "cpu") == "fp32"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.resolve("auto", "cpu") == "bf16"
    assert [precision.resolve(p, "cpu") for p in ("fp32", "bf16", "fp16")] == ["fp32", "bf16", "fp16"]


def test_bf16_vectors_are_float32_close_to_fp32_and_recorded(tmp_path, models):
    items = write_items(tmp_path / "items.jsonl", ITEMS)
    out = {}
    for p in ("fp32", "bf16"):
        path = tmp_path / f"{p}.safetensors"
        r = run("extract", items, "--text", "bert", "--text-model", models.bert, "--precision", p, "-o", path)
        assert r.exit_code == 0, r.output
        out[p] = F.load(str(path))
    (a, meta_a), (b, meta_b) = out["fp32"], out["bf16"]
    assert b["text"].dtype == a["text"].dtype == np.float32 and b["text"].shape == (3, 32)
    cos = (a["text"] * b["text"]).sum(1) / np.linalg.norm(a["text"], axis=1) / np.linalg.norm(b["text"], axis=1)
    assert (cos > 0.99).all() and not np.array_equal(a["text"], b["text"])
    assert (meta_a["encoders"]["text"]["precision"], meta_b["encoders"]["text"]["precision"]) == ("fp32", "bf16")
    assert meta_b["config"]["precision"] == "bf16"


def test_auto_on_this_test_cpu_is_fp32_to_the_byte(tmp_path, models):
    items = write_items(tmp_path / "items.jsonl", ITEMS)
    args = ["extract", items, "--text", "bert", "--text-model", models.bert]
    assert run(*args, "-o", tmp_path / "auto.safetensors").exit_code == 0
    assert run(*args, "--precision", "fp32", "-o", tmp_path / "fp32.safetensors").exit_code == 0
    auto, meta = F.load(str(tmp_path / "auto.safetensors"))
    assert np.array_equal(auto["text"], F.load(str(tmp_path / "fp32.safetensors"))[0]["text"])
    assert meta["encoders"]["text"]["precision"] == "fp32"


def test_an_unknown_precision_is_one_line_and_writes_nothing(tmp_path, models):
    items = write_items(tmp_path / "items.jsonl", ITEMS)
    out = tmp_path / "f.safetensors"
    r = run("extract", items, "--text", "bert", "--text-model", models.bert, "--precision", "fp64", "-o", out)
    assert r.exit_code != 0
    assert error_line(r) == "error: --precision fp64: expected one of auto, fp32, bf16, fp16"
    assert not out.exists()


def test_resuming_at_another_precision_is_refused(tmp_path, models):
    items = write_items(tmp_path / "items.jsonl", ITEMS)
    out = tmp_path / "f.safetensors"
    args = ["extract", items, "--text", "bert", "--text-model", models.bert, "--batch-size", 1, "-o", out]
    assert run(*args, "--precision", "bf16", "--max-batches", 1).exit_code == 130
    r = run(*args, "--precision", "fp32", "--resume")
    assert r.exit_code == 5
    assert error_line(r) == (
        f"error: {out}.partial: the interrupted run used other settings (encoders, options); "
        "resume with the same options and inputs, or run without --resume to start over"
    )


def test_clip_images_and_texts_in_bf16_are_float32_close_to_fp32(tmp_path, models):
    from _tiny_models import make_image

    make_image(tmp_path / "0.png", 0)
    make_image(tmp_path / "1.png", 1)
    items = write_items(tmp_path / "items.jsonl", [dict(r, images=f"{i}.png") for i, r in enumerate(ITEMS[:2])])
    out = {}
    for p in ("fp32", "bf16"):
        path = tmp_path / f"{p}.safetensors"
        r = run("extract", items, "--text", "clip", "--image", "clip", *models.clip, "--precision", p, "-o", path)
        assert r.exit_code == 0, r.output
        out[p] = F.load(str(path))
    for m in ("text", "image"):
        a, b = out["fp32"][0][m], out["bf16"][0][m]
        cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        assert b.dtype == np.float32 and (cos > 0.99).all(), (m, cos)
        assert out["bf16"][1]["encoders"][m]["precision"] == "bf16"

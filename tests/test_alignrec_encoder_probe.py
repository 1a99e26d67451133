"""bench/alignrec_encoder_probe.py: the zero-shot probe on a pre-trained AlignRec item encoder's h_enc and on the
standardised features, as bench/mmmlp_alignrec_quality.sh runs it at its end."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from test_alignrec import tiny_ds, tiny_features
from typer.testing import CliRunner

from mmrec_cli.cli.app import app
from mmrec_cli.data import dataset as D
from mmrec_cli.io import feature_file as FE
from mmrec_cli.models import alignrec as A

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "alignrec_encoder_probe.py"
ARCH = ["--set", "model.embedding=8", "--set", "model.enc_chunks=4", "--set", "model.enc_hidden=8", "--set", "model.enc_heads=2", "--set", "model.knn_k=3"]


def pretrained(tmp_path: Path) -> tuple[str, str, str]:
    ds = tiny_ds()
    D.save(ds, str(tmp_path / "ds.safetensors"), "test", {}, {})
    feats = {k: v.numpy() for k, v in tiny_features().items()}
    FE.save(str(tmp_path / "f.safetensors"), feats, ds.item_ids, "test", {}, {}, {"text": {"source": "test"}, "image": {"source": "test"}})
    d, fs, pre = str(tmp_path / "ds.safetensors"), str(tmp_path / "f.safetensors"), str(tmp_path / "pre.safetensors")
    r = CliRunner().invoke(app, ["pretrain", "alignrec", d, "--features", fs, "-o", pre, "--epochs", "2", *ARCH])
    assert r.exit_code == 0, r.output
    return d, fs, pre


def test_the_script_prints_both_probes_and_the_standardised_one_is_the_raw_content(tmp_path):
    d, fs, pre = pretrained(tmp_path)
    run = subprocess.run([sys.executable, str(SCRIPT), d, fs, pre, "test"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["split"] == "test" and set(out["probe"]) == {"encoder", "standardised", "encoder+standardised"}
    ds = D.load(d)
    raw = A.Model(A.Config(content="raw"), ds.num_items, tiny_features()).content()[0]
    assert out["probe"]["standardised"] == A.probe(ds, {"x": raw}, "test")["x"]
    assert out["probe"]["encoder"] != out["probe"]["standardised"]


def test_it_is_importable_for_python_use(tmp_path):
    spec = importlib.util.spec_from_file_location("alignrec_encoder_probe", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    d, fs, pre = pretrained(tmp_path)
    assert module.encoder_probe(d, fs, pre, "valid")["split"] == "valid"

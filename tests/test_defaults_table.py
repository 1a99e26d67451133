"""bench/defaults_sweep.sh's table (docs/results/defaults.md): every finished sweep in OUT_DIR is in it, whichever
models the run was given, so that running one model's sweep does not drop the others' tables."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sweep(out: Path, model: str, domain: str, figures: dict) -> None:
    """A finished sweep folder as `mmrec sweep` leaves it: settings.json and results.csv (validation means only)."""
    folder = out / f"{model}_{domain}"
    folder.mkdir(parents=True)
    (folder / "settings.json").write_text(json.dumps({"keys": ["model.dropout", "train.lr"]}))
    rows = ["setting,model.dropout,train.lr,valid_ndcg@10_mean"]
    rows += [f"s{i},{d},{lr},{v}" for i, ((d, lr), v) in enumerate(figures.items())]
    (folder / "results.csv").write_text("\n".join(rows) + "\n")


def run_table(tmp_path: Path, models: str) -> str:
    """The script run with RUN=0 from a copy of bench/ and examples/configs/, so the real docs stay untouched."""
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "bench", root / "bench")
    shutil.copytree(ROOT / "examples" / "configs", root / "examples" / "configs")
    out = tmp_path / "out"
    env = os.environ | {"RUN": "0", "MODELS": models, "PY": sys.executable, "PYTHONPATH": str(ROOT)}
    subprocess.run(["bash", str(root / "bench" / "defaults_sweep.sh"), str(out)], cwd=root, env=env, check=True,
                   capture_output=True, text=True)
    return (root / "docs" / "results" / "defaults.md").read_text()


def test_every_finished_sweep_is_in_the_table_not_only_the_models_run(tmp_path):
    out = tmp_path / "out"
    grid = {("0.2", "0.001"): 0.05, ("0.5", "0.001"): 0.04}
    for model in ("sasrec", "mmmlp"):
        for domain in ("sci", "instr"):
            sweep(out, model, domain, grid)
    text = run_table(tmp_path, "mmmlp")
    assert text.index("## sasrec") < text.index("## mmmlp")  # the registry's order
    assert "| → | 0.2 | 0.001 | 0.0500 | 1 | 0.0500 | 1 | 1 | 1.000 |" in text.split("## sasrec")[1]


def test_a_model_asked_for_without_a_sweep_says_so(tmp_path):
    sweep(tmp_path / "out", "sasrec", "sci", {("0.2", "0.001"): 0.05})
    text = run_table(tmp_path, "gru4rec")
    assert "## gru4rec\n\n(no sweep finished yet:" in text
    assert "Validation ndcg@10 on Scientific, mean over seeds;" in text.split("## sasrec")[1]

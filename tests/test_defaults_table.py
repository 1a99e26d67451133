"""bench/defaults_sweep.sh's table (docs/results/defaults.md): it is read from the kept results (a copy of each
finished sweep's results.csv in the repository), holds every model kept there whichever models the run was given,
and a run keeps the sweeps it finished."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = "setting,model.dropout,train.lr,valid_ndcg@10_seed1,valid_ndcg@10_mean,chosen"


def results(figures: dict) -> str:
    """A results.csv as `mmrec sweep` writes it (the columns the table reads)."""
    rows = [f"s{i},{d},{lr},{v},{v},no" for i, ((d, lr), v) in enumerate(figures.items())]
    return "\n".join([HEADER, *rows]) + "\n"


def kept(folder: Path, model: str, domain: str, figures: dict, source: str = "an earlier run") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{model}_{domain}.csv").write_text(results(figures))
    (folder / f"{model}_{domain}.json").write_text(json.dumps({"source": source}))


def finished_sweep(out: Path, model: str, domain: str, figures: dict) -> None:
    (out / f"{model}_{domain}").mkdir(parents=True)
    (out / f"{model}_{domain}" / "results.csv").write_text(results(figures))


def run_table(tmp_path: Path, models: str, domains: str = "sci instr") -> str:
    """The script run with RUN=0 from a copy of bench/ and examples/configs/, so the real docs stay untouched."""
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "bench", root / "bench", dirs_exist_ok=True)
    shutil.copytree(ROOT / "examples" / "configs", root / "examples" / "configs", dirs_exist_ok=True)
    env = os.environ | {"RUN": "0", "MODELS": models, "DOMAINS": domains, "KEEP": str(tmp_path / "kept"),
                        "PY": sys.executable, "PYTHONPATH": str(ROOT)}
    subprocess.run(["bash", str(root / "bench" / "defaults_sweep.sh"), str(tmp_path / "out")], cwd=root, env=env,
                   check=True, capture_output=True, text=True)
    return (root / "docs" / "results" / "defaults.md").read_text()


def test_every_kept_sweep_is_in_the_table_not_only_the_models_run(tmp_path):
    grid = {("0.2", "0.001"): 0.05, ("0.5", "0.001"): 0.04}
    for model in ("sasrec", "mmmlp"):
        for domain in ("sci", "instr"):
            kept(tmp_path / "kept", model, domain, grid, f"{model} on {domain}")
    text = run_table(tmp_path, "mmmlp")
    assert text.index("## sasrec") < text.index("## mmmlp")  # the registry's order
    sasrec = text.split("## sasrec")[1].split("## mmmlp")[0]
    assert "| → | 0.2 | 0.001 | 0.0500 | 1 | 0.0500 | 1 | 1 | 1.000 |" in sasrec
    assert "Scientific: sasrec on sci.\n\nInstruments: sasrec on instr.\n" in sasrec


def test_a_model_asked_for_without_a_sweep_says_so(tmp_path):
    kept(tmp_path / "kept", "sasrec", "sci", {("0.2", "0.001"): 0.05})
    text = run_table(tmp_path, "gru4rec")
    assert "## gru4rec\n\n(no sweep finished yet)" in text
    assert ("Validation ndcg@10 on Scientific, mean over seeds; * the example config's; no Instruments sweep has "
            "finished yet") in text.split("## sasrec")[1]


def test_a_run_keeps_the_sweeps_it_finished_with_their_command(tmp_path):
    out = tmp_path / "out"
    finished_sweep(out, "sasrec", "instr", {("0.2", "0.001"): 0.06})
    finished_sweep(out, "gru4rec", "instr", {("0.1", "0.001"): 0.03})  # not this run's model: not kept
    kept(tmp_path / "kept", "sasrec", "sci", {("0.2", "0.001"): 0.05}, "the Scientific run")
    text = run_table(tmp_path, "sasrec", "instr")
    assert (tmp_path / "kept" / "sasrec_instr.csv").read_text() == (out / "sasrec_instr" / "results.csv").read_text()
    source = json.loads((tmp_path / "kept" / "sasrec_instr.json").read_text())["source"]
    assert source.startswith("`MODELS=sasrec DOMAINS=instr RUN=0 KEEP=") and "bench/defaults_sweep.sh" in source
    assert not (tmp_path / "kept" / "gru4rec_instr.csv").exists()
    assert "| → | 0.2 | 0.001 | 0.0500 | 1 | 0.0600 | 1 | 1 | 1.000 |" in text
    assert "Scientific: the Scientific run." in text
    (tmp_path / "kept" / "sasrec_instr.json").write_text(json.dumps({"source": "first kept"}))
    run_table(tmp_path, "sasrec", "instr")  # the same results again: the kept copy and its source stay
    assert json.loads((tmp_path / "kept" / "sasrec_instr.json").read_text())["source"] == "first kept"

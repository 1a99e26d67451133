"""mmrec sweep: one finetune process per (setting, seed), the best mean validation metric chosen, its test once.

The end-to-end cases share one uninterrupted 2 settings x 2 seeds sweep of a tiny SASRec (`swept`); a sweep
killed after its first run and started again must end with the same bytes. The sampling and the bad input
need no training: they fail, or are planned, before any run starts.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from _cli import error_line, run
from conftest import tiny_sequences

from mmrec_cli.data import dataset as D
from mmrec_cli.io import artifacts
from mmrec_cli.training import sweep as S

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "model.hidden=8", "--set", "model.inner=16", "--set", "model.layers=1", "--set", "train.epochs=2"]
LRS = {S.setting_id({"train.lr": 0.001}): 0.001, S.setting_id({"train.lr": 0.01}): 0.01}


def sweep_args(ds: Path, jobs: int = 1) -> list[str]:
    return ["sweep", "sasrec", str(ds), "-o", "sw", "--grid", "train.lr=0.001,1e-2", "--seeds", "1,2", "--jobs", str(jobs), "--device", "cpu", *TINY]


def child_env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """An uninterrupted sweep, two runs at a time, run in-process in `whole/` (its runs are processes)."""
    root = tmp_path_factory.mktemp("sweep")
    ds = root / "ds.safetensors"
    seqs = tiny_sequences()
    D.save(D.from_sequences(seqs, [f"i{i}" for i in range(20)], [f"u{u}" for u in range(len(seqs))]), str(ds), {"command": "test"}, {}, {})
    whole = root / "whole"
    whole.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(whole)
        mp.setenv("OMP_NUM_THREADS", "1")
        r = run(*sweep_args(ds, jobs=2))
    assert r.exit_code == 0, r.output
    return SimpleNamespace(ds=ds, dir=whole / "sw", result=r)


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_a_grid_sweep_writes_a_row_per_setting_and_chooses_the_best_mean(swept):
    out = swept.dir
    assert swept.result.stdout == ""
    table = rows(out / "results.csv")
    assert [r["setting"] for r in table] == list(LRS)  # the grid's order
    means = {}
    for r in table:
        valid = []
        for seed in (1, 2):
            meta = artifacts.read_meta(out / "runs" / r["setting"] / f"seed{seed}.safetensors", kind="model")
            assert meta["stage"] == "finetune" and meta["seed"] == seed and meta["config"]["train"]["lr"] == LRS[r["setting"]]
            assert meta["config"]["model"]["hidden"] == 8 and meta["config"]["train"]["epochs"] == 2
            valid.append(meta["valid"]["ndcg@10"])
            assert r[f"valid_ndcg@10_seed{seed}"] == repr(valid[-1])
        assert float(r["train.lr"]) == LRS[r["setting"]]
        assert r["valid_ndcg@10_mean"] == repr((valid[0] + valid[1]) / 2)
        assert float(r["valid_ndcg@10_std"]) == pytest.approx(abs(valid[0] - valid[1]) / math.sqrt(2), rel=1e-12)  # sample std
        means[r["setting"]] = (valid[0] + valid[1]) / 2
    best = max(means, key=means.get)
    assert means[best] != min(means.values())  # the two settings differ, so the choice is a choice
    assert [r["chosen"] for r in table] == ["yes" if r["setting"] == best else "no" for r in table]
    chosen = next(r for r in table if r["chosen"] == "yes")
    other = next(r for r in table if r["chosen"] == "no")
    tests = [json.loads((out / f"test_seed{s}.json").read_text()) for s in (1, 2)]
    assert [t["split"] for t in tests] == ["test", "test"]
    assert [Path(t["model"]["path"]).parent.name for t in tests] == [best, best]  # only the chosen setting's runs
    assert chosen["test_ndcg@10_mean"] == repr((tests[0]["metrics"]["ndcg@10"] + tests[1]["metrics"]["ndcg@10"]) / 2)
    assert other["test_ndcg@10_mean"] == "" and other["test_recall@10_std"] == ""
    seed_valid = {s: float(chosen[f"valid_ndcg@10_seed{s}"]) for s in (1, 2)}
    best_seed = max((1, 2), key=lambda s: (seed_valid[s], -s))
    assert (out / "best.safetensors").read_bytes() == (out / "runs" / best / f"seed{best_seed}.safetensors").read_bytes()
    settings = json.loads((out / "settings.json").read_text())
    assert settings["settings"] == {k: {"train.lr": v} for k, v in LRS.items()} and settings["seeds"] == [1, 2]
    md = (out / "results.md").read_text()
    assert f"| **→** | `{best}` |" in md and f"|  | `{other['setting']}` |" in md
    assert f"`best.safetensors` is `runs/{best}/seed{best_seed}.safetensors`" in md
    assert not list(out.rglob("*.ckpt")) and not list(out.rglob(".*.tmp"))
    assert sorted(p.name for p in out.glob("test_seed*")) == ["test_seed1.json", "test_seed1.rankings.jsonl", "test_seed2.json", "test_seed2.rankings.jsonl"]
    lines = swept.result.stderr.splitlines()
    assert lines[0] == "sweep sasrec: 2 settings x 2 seeds = 4 runs; 0 finished, 4 to run, 2 at a time with 1 thread(s) each"
    assert sum(": training (train.lr=" in line for line in lines) == 4


@pytest.mark.slow
def test_finished_runs_and_tests_are_not_run_again(swept, monkeypatch):
    """Every run and test result is there: the sweep only reads them, and rewrites the same results."""
    monkeypatch.chdir(swept.dir.parent)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in swept.dir.rglob("*") if p.is_file()}
    r = run(*sweep_args(swept.ds))
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines()[0] == "sweep sasrec: 2 settings x 2 seeds = 4 runs; 4 finished, 0 to run"
    assert sum(line.startswith("skipped ") for line in r.stderr.splitlines()) == 6  # 4 runs, 2 test evaluations
    for p, (mtime, data) in before.items():
        assert p.read_bytes() == data, p
        if p.suffix in (".safetensors", ".jsonl") and p.name != "best.safetensors":
            assert p.stat().st_mtime_ns == mtime, p


@pytest.mark.slow
def test_a_run_made_with_other_settings_is_refused(swept, monkeypatch):
    monkeypatch.chdir(swept.dir.parent)
    before = {p: p.stat().st_mtime_ns for p in swept.dir.rglob("*") if p.is_file()}
    args = [a if a != "model.hidden=8" else "model.hidden=16" for a in sweep_args(swept.ds)]
    r = run(*args)
    first = next(iter(LRS))
    assert r.exit_code == 6
    assert error_line(r) == f"error: sw/runs/{first}/seed1.safetensors was made with config.model.hidden = 8, this sweep has 16; give the sweep another -o folder, or remove sw/runs/{first}"
    assert {p: p.stat().st_mtime_ns for p in swept.dir.rglob("*") if p.is_file()} == before


def second_run(pid: int) -> int | None:
    """The process id of the sweep's second run (the first setting's seed 2), from /proc (Linux)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    for child in path.read_text().split() if path.exists() else []:
        try:
            if b"seed2.safetensors" in Path(f"/proc/{child}/cmdline").read_bytes():
                return int(child)
        except OSError:  # ended meanwhile
            continue
    return None


def alive(pid: int) -> bool:
    """Running, and not a zombie (one that nobody reaped, as under a container's init)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


@pytest.mark.slow
def test_a_killed_sweep_run_again_ends_with_the_same_results(swept, tmp_path, monkeypatch):
    part = tmp_path / "part"
    part.mkdir()
    argv = sweep_args(swept.ds)
    done = lambda: sorted(part.glob("sw/runs/*/seed*.safetensors"))  # noqa: E731
    proc = subprocess.Popen([sys.executable, "-m", "mmrec_cli", *argv], cwd=part, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not done() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    linux = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").exists()
    while linux and second_run(proc.pid) is None and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    child = second_run(proc.pid) if linux else None
    time.sleep(0.2 if linux else 0.5)  # into the second run
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    finished = {p: p.stat().st_mtime_ns for p in done()}
    assert 1 <= len(finished) < 4 and not (part / "sw" / "results.csv").exists(), "the sweep finished before it could be killed"
    if linux:  # the run dies with the sweep, so that no orphan keeps writing into its folder
        assert child is not None
        deadline = time.time() + 30
        while alive(child) and time.time() < deadline:
            time.sleep(0.05)
        assert not alive(child), "a run outlived its sweep"
    monkeypatch.chdir(part)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    r = run(*sweep_args(swept.ds, jobs=2))  # two at a time now: the results do not depend on it
    assert r.exit_code == 0, r.output
    lines = r.stderr.splitlines()
    assert sum(line.startswith("skipped ") for line in lines) == len(finished)
    assert sum(": training (" in line or ": resuming from its checkpoint (" in line for line in lines) == 4 - len(finished)
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # not trained again
    for name in ("results.csv", "results.md", "best.safetensors", "settings.json", "test_seed1.json", "test_seed2.json"):
        assert (part / "sw" / name).read_bytes() == (swept.dir / name).read_bytes(), name


@pytest.mark.slow
def test_a_failed_run_fails_the_sweep_with_its_own_line_and_exit_code(tiny_dataset, tmp_path, monkeypatch):
    """A checkpoint of another run in the way: finetune refuses to resume it (exit 5); the sweep names the run."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    sid = S.setting_id({"train.lr": 0.001})
    ckpt = tmp_path / "sw" / "runs" / sid / "seed1.safetensors.ckpt"
    ckpt.parent.mkdir(parents=True)
    artifacts.save(ckpt, {}, "checkpoint", {"identity": {"config": {}}})
    r = run("sweep", "sasrec", tiny_dataset[0], "-o", "sw", "--grid", "train.lr=0.001", "--seeds", "1", *TINY)
    assert r.exit_code == 5 and "Traceback" not in r.output
    lines = r.stderr.splitlines()
    assert lines[1] == f"1/1 {sid} seed 1: resuming from its checkpoint (train.lr=0.001)"
    line = lines[-1]  # after the progress lines: the failure, once
    assert line.startswith(f"error: 1 of 1 runs failed, the first {sid} seed 1 (exit 5): error: --resume: sw/runs/{sid}/seed1.safetensors.ckpt was made with ")
    assert line.endswith(f"(log: sw/runs/{sid}/seed1.log); finished runs are kept: run the sweep again to retry the others")
    assert not (tmp_path / "sw" / "results.csv").exists()


# ---- settings, sampling, threads ----------------------------------------------------------------------


SPACE = {"train.lr": {"log_uniform": [1e-4, 1e-2]}, "model.hidden": [8, 16], "model.dropout": {"uniform": [0.0, 0.5]}}


def test_random_settings_depend_only_on_the_space_and_the_sample_seed():
    a, b, c = S.sample_points(SPACE, 4, 7), S.sample_points(SPACE, 4, 7), S.sample_points(SPACE, 4, 8)
    assert a == b and a != c
    assert a[0] == {"train.lr": "0.0004443", "model.hidden": "8", "model.dropout": "0.1974"}  # Python's random, seeded
    for point in a + c:
        lr, dropout = float(point["train.lr"]), float(point["model.dropout"])
        assert 1e-4 <= lr <= 1e-2 and 0 <= dropout <= 0.5 and point["model.hidden"] in ("8", "16")
        assert float(f"{lr:.4g}") == lr


def test_a_random_plan_is_the_same_from_json_and_toml_and_writes_nothing(tiny_dataset, tmp_path):
    flat = tmp_path / "space.json"
    flat.write_text(json.dumps(SPACE))
    nested = tmp_path / "space.toml"
    nested.write_text("[train]\nlr = { log_uniform = [1e-4, 1e-2] }\n[model]\nhidden = [8, 16]\ndropout = { uniform = [0.0, 0.5] }\n")
    plans = [S.plan("sasrec", str(tiny_dataset[0]), tmp_path / "sw", "1,2", random=6, space=str(f), sample_seed=3) for f in (flat, nested, flat)]
    ids = [[s.id for s in p.settings] for p in plans]
    assert ids[0] == ids[1] == ids[2] and 1 < len(ids[0]) <= 6
    assert [s.values for s in plans[0].settings] == [s.values for s in plans[1].settings]
    assert all(s.id == S.setting_id(s.values) for s in plans[0].settings)
    assert plans[0].keys == ["train.lr", "model.hidden", "model.dropout"] and plans[0].metric == "ndcg@10"
    other = S.plan("sasrec", str(tiny_dataset[0]), tmp_path / "sw", "1,2", random=6, space=str(flat), sample_seed=4)
    assert [s.id for s in other.settings] != ids[0]
    assert not (tmp_path / "sw").exists()


def test_grid_settings_are_resolved_values_in_grid_order(tiny_dataset, tmp_path):
    p = S.plan("sasrec", str(tiny_dataset[0]), tmp_path / "sw", "3", grid=["model.hidden=8,16.0", "train.lr=1e-3,0.01"])
    assert [s.values for s in p.settings] == [
        {"model.hidden": 8, "train.lr": 0.001}, {"model.hidden": 8, "train.lr": 0.01},
        {"model.hidden": 16, "train.lr": 0.001}, {"model.hidden": 16, "train.lr": 0.01},
    ]
    assert p.settings[0].sets == ["model.hidden=8", "train.lr=0.001"]
    run = p.runs()[0]
    assert S.finetune_argv(p, run) == ["finetune", "sasrec", str(tiny_dataset[0]), "-o", str(tmp_path / "sw" / "runs" / p.settings[0].id / "seed3.safetensors"),
                                       "--resume", "--seed", "3", "--device", "auto", "--set", "model.hidden=8", "--set", "train.lr=0.001"]
    assert S.run_config(run)["train"]["seed"] == 3 and S.run_config(run)["model"]["hidden"] == 8


def test_each_run_gets_its_share_of_the_thread_budget():
    from mmrec_cli.training import jobs as P

    assert P.thread_share(4, {"OMP_NUM_THREADS": "8"}) == 2
    assert P.thread_share(3, {"OMP_NUM_THREADS": "2"}) == 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert P.thread_share(1, {}) == cpus and P.thread_share(10_000, {}) == 1
    env = P.child_env(3)
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "3"


def test_a_folder_in_use_by_another_sweep_is_refused(tiny_dataset, tmp_path, monkeypatch):
    import fcntl

    monkeypatch.chdir(tmp_path)
    Path("sw").mkdir()
    fd = os.open("sw", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as a running sweep holds it
    try:
        r = run("sweep", "sasrec", tiny_dataset[0], "-o", "sw", "--grid", "train.lr=0.01", "--seeds", "1")
    finally:
        os.close(fd)
    assert r.exit_code == 6
    assert error_line(r) == "error: -o sw: another mmrec sweep is running in this folder; wait for it to end or give another folder"
    assert list(Path("sw").iterdir()) == []


def test_an_interrupted_sweep_says_how_to_continue(tiny_dataset, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(S, "execute", interrupted)
    r = run("sweep", "sasrec", tiny_dataset[0], "-o", "sw", "--grid", "train.lr=0.01", "--seeds", "1")
    assert r.exit_code == 130
    assert r.stderr.splitlines()[-1] == "error: interrupted; finished runs and checkpoints are kept: run the same command again to continue the sweep"
    assert r.stdout == "" and not Path("sw/results.csv").exists()


# ---- bad input: one line, its exit code, nothing written -------------------------------------------------


KNOWN = "max_len, hidden, layers, heads, inner, dropout, attn_dropout, init_std"
FIX = "e.g. --grid train.lr=0.001,0.0003"
CASES = [
    (["--grid", "model.hiden=8,16"], 3, f"error: --grid model.hiden=8,16: config: unknown key 'model.hiden'; known keys of model: {KNOWN}"),
    (["--set", "model.hiden=8", "--grid", "train.lr=0.01"], 3, f"error: config: unknown key 'model.hiden'; known keys of model: {KNOWN}"),
    (["--grid", "hidden=8,16"], 3, "error: --grid hidden=8,16: config: unknown key 'hidden'; known keys: model, train"),
    (["--grid", "train.lr=fast"], 3, "error: --grid train.lr=fast: config: train.lr: 'fast' is not a valid float; use a number"),
    (["--grid", "model.hidden=8,"], 2, f"error: --grid model.hidden=8,: empty value; give one or more values separated by commas, {FIX}"),
    (["--grid", "model.hidden="], 2, f"error: --grid model.hidden=: empty value; give one or more values separated by commas, {FIX}"),
    (["--grid", "model.hidden"], 2, f"error: --grid model.hidden: expected key=v1,v2,..., {FIX}"),
    (["--grid", "train.lr=0.001", "--grid", "train.lr=0.01"], 2, "error: --grid train.lr is given twice; give all its values in one --grid train.lr=v1,v2"),
    (["--grid", "train.lr=0.001,1e-3"], 2, "error: --grid: 2 combinations give only 1 distinct settings (a value given twice, as 0.001 and 1e-3); give each value once"),
    (["--grid", "train.seed=1,2"], 2, "error: --grid train.seed=1,2: the seeds of a sweep are --seeds, e.g. --seeds 1,2,3; sweep other keys"),
    (["--grid", "train.lr=0.01,0.1", "--set", "train.lr=0.001"], 2, "error: --grid train.lr=0.01,0.1: train.lr is also fixed by --set; drop one of them"),
    (["--grid", "model.hidden=6", "--grid", "model.heads=4"], 3, "error: setting model.hidden=6, model.heads=4: config: model.hidden=6 is not divisible by model.heads=4; change one of them"),
    (["--grid", "train.lr=0.01", "--random", "2", "--space", "{space}"], 2, "error: --grid and --random are two ways to give the settings; use one of them"),
    ([], 2, "error: no settings to sweep; give --grid key=v1,v2 (repeatable) or --random N --space FILE"),
    (["--random", "3"], 2, "error: --random N and --space FILE go together: N settings are sampled from the space file"),
    (["--random", "0", "--space", "{space}"], 2, "error: --random 0: give the number of settings to sample, 1 or more"),
    (["--random", "2", "--space", "{bad_space}"], 3, 'error: {bad_space}: \'train.lr\': expected a non-empty list of choices, {"log_uniform": [lo, hi]} with 0 < lo < hi, or {"uniform": [lo, hi]} with lo < hi; got {"log_uniform": [0, 0.01]}'),
    (["--random", "2", "--space", "{missing}"], 4, "error: {missing}: config file not found; check the path"),
    (["--grid", "train.lr=0.01", "--seeds", "1,1"], 2, "error: --seeds 1,1: expected integers separated by commas, each once, e.g. 1,2,3"),
    (["--grid", "train.lr=0.01", "--jobs", "0"], 2, "error: --jobs 0: give the number of runs at a time, 1 or more"),
    (["--grid", "train.lr=0.01", "--metric", "ndcg@11"], 2, "error: --metric ndcg@11: validation records recall, hit, ndcg and mrr at 5, 10, 20, 50; e.g. --metric ndcg@10"),
    (["--grid", "train.lr=0.01", "-o", "{ds}"], 6, "error: -o {ds} is also the DATASET input; write to another file"),
    (["--grid", "train.lr=0.01", "-o", "{a_file}"], 6, "error: -o {a_file}: a file is in the way; give a folder for the sweep (made if missing)"),
    (["--grid", "train.lr=0.01", "--baseline", "sw/test_seed1.json"], 6, "error: -o sw/test_seed1.json is also the --baseline file; write to another file"),
    (["--grid", "train.lr=0.01", "--baseline", "sw/runs/r.json"], 6, "error: --baseline sw/runs/r.json is inside the sweep's runs folder sw/runs; move it out or give another -o"),
    (["--grid", "train.lr=0.01", "--baseline", "{missing}"], 4, "error: --baseline {missing}: no such file; give a result written by `mmrec eval ... --split test -o R.json --rankings R.jsonl`"),
]


@pytest.mark.parametrize("extra,code,line", CASES, ids=[c[2][7:60] for c in CASES])
def test_bad_input_is_one_line_before_anything_is_written(extra, code, line, tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("space.json").write_text(json.dumps(SPACE))
    Path("bad.json").write_text(json.dumps({"train": {"lr": {"log_uniform": [0, 0.01]}}}))
    Path("notes.txt").write_text("a file\n")
    names = {"space": "space.json", "bad_space": "bad.json", "missing": "nowhere.json", "ds": str(tiny_dataset[0]), "a_file": "notes.txt"}

    def fill(text: str) -> str:
        for key, value in names.items():
            text = text.replace("{" + key + "}", value)
        return text

    args = [fill(a) for a in extra]
    args += [] if "--seeds" in args else ["--seeds", "1,2"]
    args += [] if "-o" in args else ["-o", "sw"]
    r = run("sweep", "sasrec", tiny_dataset[0], *args)
    assert r.exit_code == code, r.output
    assert error_line(r) == fill(line)
    assert r.stdout == "" and not Path("sw").exists()


@pytest.mark.slow
def test_runs_made_before_a_setting_existed_count_as_its_default(swept, tmp_path, monkeypatch):
    """Artifacts written before a setting was added lack its key: a sweep that keeps the default reuses them."""
    import shutil

    shutil.copytree(swept.dir, tmp_path / "sw")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    for path in sorted((tmp_path / "sw" / "runs").glob("*/seed*.safetensors")):
        tensors, meta = artifacts.load(path, torch=False)
        del meta["config"]["model"]["init_std"]
        artifacts.save(path, tensors, "model", {k: v for k, v in meta.items() if k not in ("schema", "kind", "versions", "tensors_sha256")})
    first = next(iter(LRS))
    r = run(*sweep_args(swept.ds), "--set", "model.init_std=0.05")
    assert r.exit_code == 6
    assert error_line(r) == f"error: sw/runs/{first}/seed1.safetensors was made with config.model.init_std = 0.02 (not recorded: the file predates the setting, which then had its default), this sweep has 0.05; give the sweep another -o folder, or remove sw/runs/{first}"
    r = run(*sweep_args(swept.ds))
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines()[0] == "sweep sasrec: 2 settings x 2 seeds = 4 runs; 4 finished, 0 to run"


def test_a_run_made_with_another_recompute_counts_as_this_sweeps_run():
    """MISSRec's model.recompute changes how, not what, it computes: the sweep compares the rest."""
    made = {"config": {"model": {"recompute": True, "hidden": 8}}}
    S._ignore_same_results(made, {"config": {"model": {"recompute": False, "hidden": 16}}}, "missrec")
    assert made == {"config": {"model": {"recompute": False, "hidden": 8}}}
    made = {"config": {"model": {"dropout": 0.2}}}
    S._ignore_same_results(made, {"config": {"model": {"dropout": 0.5}}}, "sasrec")
    assert made == {"config": {"model": {"dropout": 0.2}}}

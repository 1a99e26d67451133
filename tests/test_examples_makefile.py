"""The example pipeline's Makefile: what `make demo` (SETTINGS=demo) and `make reproduce` (SETTINGS=full) run, read
from `make -n` (nothing is executed)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def dry_run(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-n", "-C", str(EXAMPLES), "all", f"OUT={tmp_path}/out", "MMREC=mmrec", *args], capture_output=True, text=True)


def trainings(stdout: str) -> dict[str, str]:
    """Output file name -> the mmrec pretrain/finetune command line that writes it."""
    runs = {}
    for line in stdout.splitlines():
        m = re.search(r"mmrec (pretrain|finetune) .* -o \S+/(\S+)\.safetensors", line)
        if m:
            runs[m.group(2)] = line
    return runs


def test_demo_caps_the_epochs_of_every_training(tmp_path):
    runs = trainings(dry_run(tmp_path, "SETTINGS=demo").stdout)
    epochs = {name: int(re.search(r"--epochs (\d+)", line).group(1)) for name, line in runs.items()}
    assert epochs == {"sasrec": 15, "msm4sr.pre": 5, "msm4sr": 12, "missrec.pre": 1, "missrec": 3, "mmmlp": 16, "alignrec.pre": 5, "alignrec": 10}


def test_full_settings_are_the_configs_as_they_are(tmp_path):
    runs = trainings(dry_run(tmp_path, "SETTINGS=full").stdout)
    assert len(runs) == 8
    assert not [line for line in runs.values() if "--epochs" in line]
    for line in runs.values():
        config = re.search(r"--config (\S+)", line).group(1)
        assert (EXAMPLES / config).is_file(), config


def test_an_unknown_settings_name_is_refused(tmp_path):
    run = dry_run(tmp_path, "SETTINGS=quick")
    assert run.returncode != 0
    assert "SETTINGS=quick: use demo or full" in run.stderr


def test_every_step_runs_through_the_step_wrapper(tmp_path):
    lines = [line for line in dry_run(tmp_path, "SETTINGS=demo").stdout.splitlines() if "mmrec " in line]
    assert lines and all(line.startswith(f"./step.sh {tmp_path}/out/logs/") for line in lines)


def test_the_step_wrapper_keeps_the_messages_and_the_exit_status(tmp_path):
    log = tmp_path / "logs" / "x.safetensors.log"
    ok = subprocess.run([str(EXAMPLES / "step.sh"), str(log), "sh", "-c", "echo data; echo progress >&2; echo wrote x >&2"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout == "data\n"
    assert ok.stderr.splitlines()[0] == "start x.safetensors"
    assert re.fullmatch(r"done  x\.safetensors in \d+ s: wrote x", ok.stderr.splitlines()[1])
    assert log.read_text() == "progress\nwrote x\n"
    bad = subprocess.run([str(EXAMPLES / "step.sh"), str(log), "sh", "-c", "echo broken >&2; exit 3"], capture_output=True, text=True)
    assert bad.returncode == 3
    assert bad.stderr.splitlines()[1] == "broken"
    assert re.fullmatch(rf"FAILED x\.safetensors after \d+ s \(exit 3\); its messages: {re.escape(str(log))}", bad.stderr.splitlines()[2])

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("gen_completions", ROOT / "scripts" / "gen_completions.py")
gen = importlib.util.module_from_spec(_spec)
sys.modules["gen_completions"] = gen
_spec.loader.exec_module(gen)


def test_committed_completions_match_the_command_tree():
    fresh = gen.render()
    assert sorted(fresh) == sorted(["mmrec.bash", "_mmrec", "mmrec.fish", "commands.txt"])
    for name, text in fresh.items():
        path = ROOT / "completions" / name
        assert path.is_file() and path.read_text(encoding="utf-8") == text, f"completions/{name} is out of date: run `make completions`"


def test_a_new_command_or_option_changes_the_render(monkeypatch):
    from mmrec_cli.cli import app as main

    before = gen.render()
    app = typer.Typer()
    for cmd in main.app.registered_commands:
        app.registered_commands.append(cmd)

    @app.command("brand-new")
    def brand_new(flag: bool = typer.Option(False, "--shiny")) -> None:
        """A command nobody generated completions for."""

    monkeypatch.setattr(main, "app", app)
    after = gen.render()
    for name in before:
        assert after[name] != before[name] and "brand-new" in after[name]
    assert "--shiny" in after["mmrec.bash"] and "shiny" in after["mmrec.fish"]


def _bash(words: list[str]) -> list[str]:
    script = f"""source {ROOT / 'completions' / 'mmrec.bash'}
COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}; _mmrec; printf '%s\\n' "${{COMPREPLY[@]}}" """
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_bash_completes_commands_options_and_model_names():
    assert _bash(["mmrec", "rec"]) == ["recommend"]
    assert "--exclude-history" in _bash(["mmrec", "recommend", "--ex"])
    assert "sasrec" in _bash(["mmrec", "finetune", "--epochs", "3", ""])
    assert _bash(["mmrec", "finetune", "--prec"]) == ["--precision"]


@pytest.mark.parametrize("shell,name", [("zsh", "_mmrec"), ("fish", "mmrec.fish"), ("bash", "mmrec.bash")])
def test_scripts_parse(shell, name):
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    subprocess.run([shell, "-n", str(ROOT / "completions" / name)], check=True)

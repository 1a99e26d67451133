"""What the commands print for people is the text they were given: help, file names and notes are not read as
rich markup, where "[...]" is a style tag that vanishes, and a "[/...]" without its opening tag raises."""

from __future__ import annotations

import re

import pytest
import typer.main

from mmrec_cli.cli import _common
from mmrec_cli.cli.app import app
from tests._cli import run

COMMAND = typer.main.get_command(app)
HELPED = [(name, p) for name, c in COMMAND.commands.items() for p in c.params if getattr(p, "help", None)]


def words(text: str) -> str:
    """The text without its whitespace: the help is wrapped at spaces and hyphens."""
    return re.sub(r"\s+", "", text)


@pytest.mark.parametrize("name", sorted(COMMAND.commands))
def test_every_option_help_is_printed_as_written(name):
    out = words(run(name, "--help").output)
    for p in COMMAND.commands[name].params:
        if getattr(p, "help", None):
            assert words(p.help) in out, p.name


def test_help_keeps_its_brackets():
    assert words("pip install 'mmrec[tensorboard]'") in words(run("finetune", "--help").output)
    assert words('"items": [ids, newest last]') in words(run("recommend", "--help").output)


def test_a_message_is_printed_as_is(capsys):
    _common.say("wrote runs/[best]/a[/b].safetensors")
    _common.say("wrote x:smile:y.safetensors")  # not an emoji
    assert capsys.readouterr().err == "wrote runs/[best]/a[/b].safetensors\nwrote x:smile:y.safetensors\n"


def test_an_output_name_with_brackets_is_named_as_written(tiny_dataset, tmp_path):
    path, _ = tiny_dataset
    (tmp_path / "a[").mkdir()
    for name in ("run[best].safetensors", "a[/b].safetensors"):
        r = run("subsample", path, "--keep-users", "0.5", "-o", tmp_path / name)
        assert r.exit_code == 0, r.output
        assert r.stderr.startswith(f"wrote {tmp_path / name}: "), r.stderr


def test_the_command_list_gives_each_commands_whole_first_paragraph():
    out = words(run("--help").output)
    assert words("sweep Train MODEL on DATASET once per (setting, seed), choose the setting with the best mean validation metric, evaluate it on the test split; rerun the same command to finish an interrupted sweep.") in out
    for name, c in COMMAND.commands.items():
        first = c.help.split("\n\n")[0]
        assert words(f"{name} {first}") in out, name


def test_help_is_not_a_format_string():
    """Click prints help as written: a '%%' written for argparse's %-formatting reaches the reader doubled."""
    assert words("the oldest 80 % of all interactions train, the next 10 % valid, the last 10 % test") in words(run("prepare", "--help").output)
    assert [f"{name} {p.name}" for name, p in HELPED if "%%" in p.help] == []

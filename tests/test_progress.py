"""Progress when stderr is not a terminal: plain lines, so that the logs of Makefile and batch runs show it."""

from __future__ import annotations

from mmrec_cli.cli import _common


def test_progress_prints_plain_lines_when_stderr_is_not_a_terminal(monkeypatch, capsys):
    clock = iter([0.0, 10.0, 40.0, 45.0, 80.0])
    monkeypatch.setattr("time.monotonic", lambda: next(clock))
    with _common.progress("eval", 4000, "users") as advance:
        advance(1000)  # 10 s: too soon for a line
        advance(1000)  # 40 s
        advance(1000)  # 45 s: 5 s after the last line
        advance(1000)  # 80 s
    assert capsys.readouterr().err.splitlines() == ["eval: 2,000/4,000 (50 %), 50.0 users/s, 40 s", "eval: 4,000/4,000 (100 %), 50.0 users/s, 80 s"]


def test_the_interval_is_a_setting_and_an_unknown_total_counts_only(monkeypatch, capsys):
    monkeypatch.setenv("MMREC_PROGRESS_SECONDS", "0")
    with _common.progress("pretrain msm4sr", None) as advance:
        advance()
        advance(2)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in lines] == ["pretrain msm4sr: 1", "pretrain msm4sr: 3"]

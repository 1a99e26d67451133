"""The Python API: the README's example runs as written, and the functions agree with the commands."""

import re
from pathlib import Path

import mmrec_cli

ROOT = Path(__file__).resolve().parents[1]


def readme_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) == 1, "README.md has one Python example"
    return blocks[0]


def test_the_readme_example_runs(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    exec(compile(readme_example(), "README.md", "exec"), {})
    ndcg, recs = capsys.readouterr().out.strip().split("\n")
    assert 0 < float(ndcg) < 1
    assert len(eval(recs)) == 1 and len(eval(recs)[0]) == 3


def test_the_api_is_imported_on_first_use():
    assert set(mmrec_cli.__all__) <= set(dir(mmrec_cli.api))
    assert mmrec_cli.finetune is mmrec_cli.api.finetune

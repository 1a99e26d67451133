"""Print the bad-input cases of tests/test_bad_input_inventory.py per subcommand (every `mmrec` subcommand,
so that one without cases shows 0). `--names` also lists each case with its exit code.

    .venv/bin/python scripts/bad_input_inventory.py [--names]
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def main(argv: list[str]) -> int:
    import typer.main
    from test_bad_input_inventory import CASES

    from mmrec_cli.cli.app import app

    commands = list(typer.main.get_command(app).commands)
    counts = Counter(case[0] for case in CASES)
    width = max(len(c) for c in commands + ["command"])
    print(f"{'command':<{width}}  cases  exit codes")
    for command in commands + sorted(set(counts) - set(commands)):
        codes = sorted({case[3] for case in CASES if case[0] == command})
        print(f"{command:<{width}}  {counts[command]:>5}  {', '.join(map(str, codes))}")
        if "--names" in argv:
            for case in (c for c in CASES if c[0] == command):
                print(f"{'':<{width}}    {case[3]}  {case[1]}")
    print(f"{'total':<{width}}  {len(CASES):>5}")
    return 0 if all(counts[c] >= 3 for c in commands) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

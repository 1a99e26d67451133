"""bench/transfer_table.py --previous: rows and sections an earlier results file has, carried into a partial run's
table with the commit they were measured at."""

import importlib.util
from pathlib import Path

SPEC = importlib.util.spec_from_file_location("transfer_table", Path(__file__).resolve().parents[1] / "bench" / "transfer_table.py")
table = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(table)

PREVIOUS = """# Results of bench/transfer_quality.sh

Command, from the repository root at commit abc1234: `bench/transfer_quality.sh`

## Full target data

| model | seeds | test N@10 |
|---|---|---|
| SASRec (IDs) | 3 | 0.0766 |
| MISSRec, scratch (IDs) | 3 | 0.0844 |
| MISSRec, transductive | (missing) | |
| UniSRec, scratch (run at 0ld0000) | 2 | 0.0700 |

## Learning curve: UniSRec

| share of users | scratch test N@10 |
|---|---|
| 0.05 | 0.0250 |
| 0.5 | (missing) |
"""

NEW = """## Full target data

| model | seeds | test N@10 |
|---|---|---|
| SASRec (IDs) | (missing) | |
| MISSRec, scratch (IDs) | 3 | 0.0850 |
| MISSRec, transductive | 3 | 0.0800 |
| UniSRec, scratch | (missing) | |
"""


def test_missing_rows_and_sections_come_from_the_previous_file_marked_with_its_commit():
    assert table.carry_over(NEW, PREVIOUS) == """## Full target data

| model | seeds | test N@10 |
|---|---|---|
| SASRec (IDs) (run at abc1234) | 3 | 0.0766 |
| MISSRec, scratch (IDs) | 3 | 0.0850 |
| MISSRec, transductive | 3 | 0.0800 |
| UniSRec, scratch (run at 0ld0000) | 2 | 0.0700 |

## Learning curve: UniSRec (run at abc1234)

| share of users | scratch test N@10 |
|---|---|
| 0.05 | 0.0250 |
| 0.5 | (missing) |
"""


def test_a_row_carried_once_keeps_its_first_mark_and_a_new_run_replaces_it():
    once = table.carry_over(NEW, PREVIOUS)
    again = table.carry_over(NEW, "Command, from the repository root at commit fff9999: `x`\n\n" + once)
    assert "| SASRec (IDs) (run at abc1234) | 3 | 0.0766 |" in again and "fff9999" not in again.split("## Learning")[0]
    assert "## Learning curve: UniSRec (run at abc1234)" in again
    rerun = NEW.replace("| SASRec (IDs) | (missing) | |", "| SASRec (IDs) | 3 | 0.0770 |")
    assert "| SASRec (IDs) | 3 | 0.0770 |" in table.carry_over(rerun, once)
    assert "0.0766" not in table.carry_over(rerun, once)


def test_a_row_taken_from_a_carried_section_gets_the_sections_commit_not_the_files():
    # The earlier file carried the whole curve section from a run at 0ld0000 and was itself written at abc1234; a
    # new run of one share takes the other shares' rows from that section: they were measured at 0ld0000.
    previous = PREVIOUS.replace("## Learning curve: UniSRec", "## Learning curve: UniSRec (run at 0ld0000)")
    new = NEW + """
## Learning curve: UniSRec

| share of users | scratch test N@10 | pre-trained test N@10 |
|---|---|---|
| 0.05 | (missing) | |
| 0.5 | 0.0575 | 0.0730 |
"""
    out = table.carry_over(new, previous)
    assert "| 0.05 (run at 0ld0000) | 0.0250 |" in out, out
    assert "| 0.5 | 0.0575 | 0.0730 |" in out and "## Learning curve: UniSRec\n" in out

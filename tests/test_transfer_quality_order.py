"""bench/transfer_quality.sh runs each learning curve after the full-data rows whose validation figures choose it,
so that the default PARTS run from a clean checkout to the end."""

import re
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "transfer_quality.sh"


def test_each_learning_curve_comes_after_the_rows_it_is_chosen_on():
    text = SCRIPT.read_text()
    at = {m.group(1): m.start() for m in re.finditer(r"^if has (\S+); then", text, re.M)}
    assert at["msm4sr"] < at["curve"]  # the curve's source: the best of msm4sr_instr / msm4sr_both on validation
    assert at["unisrec"] < at["unisrec-curve"]  # the curve's mode: the better of unisrec_inductive / _transductive

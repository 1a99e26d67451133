"""bench/unisrec_packed_table.py: the pre-training rows read from the training logs (a resumed epoch counted once)."""

import importlib.util
import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
SPEC = importlib.util.spec_from_file_location("unisrec_packed_table", BENCH / "unisrec_packed_table.py")
table = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(table)


def test_pretraining_rows_take_each_epochs_last_record_and_the_median_time(tmp_path, capsys):
    (tmp_path / "pre_unisrec_packed_instr.safetensors").write_bytes(b"")
    records = [{"epoch": 0, "loss": 6.5, "seconds": 20.0}, {"epoch": 1, "loss": 6.4, "seconds": 900.0},  # interrupted
               {"resumed": "after epoch 0"}, {"epoch": 1, "loss": 6.3, "seconds": 18.0}, {"epoch": 2, "loss": 6.1, "seconds": 19.0}]
    (tmp_path / "pre_unisrec_packed_instr.safetensors.log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    table.pretraining(tmp_path)
    out = capsys.readouterr().out.splitlines()
    assert out[4] == "| per prefix (the public code) | (missing) | | | |"
    assert out[5] == "| packed (model.packed=true) | 3 | 19.0 | 6.5000 | 6.1000 |"

"""Using trained models: full-ranking evaluation, recommendations for histories, paired statistics
between runs, and the HTML report."""

# Items scored at once: a batch's (users x CHUNK) score block stays in cache; on 2 cores 8,192 ranked a
# 1,000,000-item catalogue at 180 users/s against 114 with 65,536 (`bench/sasrec_bench.py`, same ranks).
CHUNK = 8192

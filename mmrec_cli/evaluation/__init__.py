"""Using trained models: full-ranking evaluation, recommendations for histories, paired statistics
between runs, and the HTML report."""

# Items ranked at once by evaluation: a batch's (users x CHUNK) score block stays in cache while each target's
# rank is counted. On 2 cores, 512 users at a time, a 1,000,000-item catalogue ranked at 312-324 users/s with
# 1,024 against 289 with 2,048 (`bench/sasrec_bench.py --part million --million-chunk C`, same ranks).
CHUNK = 1024
# Items scored at once by `recommend`, whose top-k merge costs per chunk: 8,192 served 5,650 histories/s on a
# 1,585-item catalogue against 5,464 with 1,024 (`bench/recommend_bench.py --sizes 2000,20000 --items 1585`).
TOP_CHUNK = 8192
# Histories scored at once by `recommend` (within a window of histories regrouped by length).
TOP_BATCH = 256

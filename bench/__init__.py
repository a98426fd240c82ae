"""envctl's benchmarks: alternating rounds of envctl against the baselines people write by hand.

Run them with `python bench/run.py` (see bench/README.md).
"""

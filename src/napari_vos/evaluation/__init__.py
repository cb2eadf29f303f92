"""Metrics (DAVIS J/F, CTC SEG), the eval/score runners and the benchmark runner."""

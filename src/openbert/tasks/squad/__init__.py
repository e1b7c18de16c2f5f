"""SQuAD v1.1 / v2.0 (run_squad.py): windows, pipeline, post-processing, the official metrics."""

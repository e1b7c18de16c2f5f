"""Sentence and sentence-pair classification (run_classifier.py): processors, pipeline, metrics."""

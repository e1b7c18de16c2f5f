"""Contextual embeddings (extract_features.py), openbert.encode and fill-mask."""

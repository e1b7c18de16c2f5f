"""Task data: reading files into examples, features and collate functions."""

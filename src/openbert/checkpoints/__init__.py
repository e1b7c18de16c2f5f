"""Checkpoints in and out: the torch <-> TF name table (``names``), TF tensor bundles without
TensorFlow (``tf_bundle``), finding / loading / saving models in every supported layout
(``pretrained``), and named real models fetched once into a cache (``assets``)."""
from .pretrained import (find_config, find_vocab, load_config, load_pretrained, read_checkpoint,
                         save_pretrained, save_tf_checkpoint)

__all__ = ["find_config", "find_vocab", "load_config", "load_pretrained", "read_checkpoint",
           "save_pretrained", "save_tf_checkpoint"]

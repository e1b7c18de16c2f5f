"""The one training loop and what it needs: ``trainer`` (TrainingArguments, Trainer, predict),
``batching`` (which examples form each batch), ``state`` (resumable training checkpoints),
``distributed``, ``optimization`` and ``plotting``."""
from .distributed import is_main_process
from .trainer import (DEVICES, PRECISIONS, ChanceLossCheck, Trainer, TrainingArguments, TrainingCallback,
                      TrainResult, autocast, dense_dtype, inference_precision, predict, prepare_for_inference,
                      resolve_device, set_seed)

__all__ = ["DEVICES", "PRECISIONS", "ChanceLossCheck", "Trainer", "TrainingArguments", "TrainingCallback",
           "TrainResult", "autocast", "dense_dtype", "inference_precision", "is_main_process", "predict",
           "prepare_for_inference", "resolve_device", "set_seed"]

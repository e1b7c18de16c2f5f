"""openbert: a faithful, fast PyTorch implementation of Google's original BERT release."""
from . import checkpoints  # noqa: F401  (installs the models' from_pretrained / save_pretrained)
from .config import BertConfig
from .errors import OpenBertError
from .model.bert import (BertForMultipleChoice, BertForPreTraining, BertForQuestionAnswering,
                         BertForSequenceClassification, BertForTokenClassification, BertModel)

__version__ = "0.1.0"

__all__ = ["BertConfig", "OpenBertError", "BertModel", "BertForPreTraining",
           "BertForSequenceClassification", "BertForQuestionAnswering",
           "BertForTokenClassification", "BertForMultipleChoice", "encode", "pipeline", "__version__"]


def encode(texts, model, **kwargs):
    """Embeddings for ``texts`` as numpy arrays (see :func:`openbert.tasks.features.extract.encode`)."""
    from .tasks.features.extract import encode as _encode

    return _encode(texts, model=model, **kwargs)


def pipeline(task: str, model, **kwargs):
    """A prediction pipeline: ``pipeline("embed" | "classify" | "qa" | "fill-mask", model=PATH|NAME)``
    (see :func:`openbert.serve.pipelines.pipeline`)."""
    from .serve.pipelines import pipeline as _pipeline

    return _pipeline(task, model=model, **kwargs)

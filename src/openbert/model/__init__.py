"""The BERT encoder and its heads (``bert``) and the CPU fast path of its dense layers (``dense``)."""
from .bert import (BertForMultipleChoice, BertForPreTraining, BertForQuestionAnswering,
                   BertForSequenceClassification, BertForTokenClassification, BertModel, BertOutput,
                   BertPreTrainedModel)

__all__ = ["BertForMultipleChoice", "BertForPreTraining", "BertForQuestionAnswering",
           "BertForSequenceClassification", "BertForTokenClassification", "BertModel", "BertOutput",
           "BertPreTrainedModel"]

"""Named-entity recognition (CoNLL-2003) and other word-level tagging, as the BERT paper fine-tunes
it: the first sub-token of each word feeds a token classifier; conlleval's metrics."""

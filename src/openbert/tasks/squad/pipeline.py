"""Running a SQuAD model: windows in, start/end logits out (the model half of run_squad's predict;
:mod:`.postprocess` turns the logits into answers)."""
from __future__ import annotations

from ...training.trainer import predict
from .data import InputFeatures, collate_predict
from .postprocess import RawResult


def raw_results(model, features: list[InputFeatures], batch_size: int, device="auto", precision: str = "fp32",
                progress: bool = True) -> list[RawResult]:
    """Start/end logits of every feature (window) of a BertForQuestionAnswering, in feature order;
    batches are length-sorted, each feature's logits cut to its real tokens."""
    results: list[RawResult | None] = [None] * len(features)
    lengths = [len(f.input_ids) for f in features]
    for idx, out in predict(model, features, collate_predict, batch_size, device=device,
                            precision=precision, lengths=lengths, progress=progress):
        start = out.start_logits.float().cpu().tolist()
        end = out.end_logits.float().cpu().tolist()
        for row, i in enumerate(idx):
            n = lengths[i]
            results[i] = RawResult(features[i].unique_id, start[row][:n], end[row][:n])
    return results

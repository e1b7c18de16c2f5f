"""classifier.evaluate / probabilities / result files, on a model with known logits."""

import numpy as np
import pytest
import torch

from openbert.model.bert import BertOutput
from openbert.tasks.classification import pipeline as classifier
from openbert.tasks.classification.data import InputFeatures

LOGITS = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, -0.5], [-1.0, 3.0]])


class KnownLogits(torch.nn.Module):
    """Returns LOGITS[example id], the id being the token after [CLS]."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, input_ids, input_mask=None, segment_ids=None):
        return BertOutput(logits=LOGITS[input_ids[:, 1]] + self.w)


def features():
    # different lengths so the length-sorted batches differ from input order
    return [InputFeatures([101, i] + [7] * (5 - i) + [102], [0] * (8 - i), label)
            for i, label in enumerate([0, 1, 0, 1, 1])]


def test_evaluate_by_hand():
    res = classifier.evaluate(KnownLogits(), features(), 2, ("accuracy", "f1"), 12, device="cpu", progress=False)
    logp = torch.log_softmax(LOGITS, -1)
    per_example = [-logp[i, y].item() for i, y in enumerate([0, 1, 0, 1, 1])]
    assert res["eval_loss"] == pytest.approx(np.mean(per_example), rel=1e-6)
    # batches of 2 in input order: (0, 1), (2, 3), (4)
    batch_means = [np.mean(per_example[0:2]), np.mean(per_example[2:4]), per_example[4]]
    assert res["loss"] == pytest.approx(np.mean(batch_means), rel=1e-6)
    # argmax: 0, 1, 0 (tie -> first), 0, 1 vs labels 0, 1, 0, 1, 1
    assert res["eval_accuracy"] == pytest.approx(0.8)
    assert res["eval_f1"] == pytest.approx(0.8)  # P = 1, R = 2/3
    assert res["global_step"] == 12


def test_probabilities_and_files(tmp_path):
    probs = classifier.probabilities(KnownLogits(), features(), 3, device="cpu", progress=False)
    assert np.allclose(probs, torch.softmax(LOGITS, -1).numpy(), atol=1e-6)
    classifier.write_test_results(tmp_path / "test_results.tsv", probs)
    lines = (tmp_path / "test_results.tsv").read_text().splitlines()
    assert len(lines) == 5 and lines[2] == "0.5\t0.5"
    classifier.write_eval_results(tmp_path / "eval_results.txt", {"loss": 0.5, "eval_accuracy": 0.25, "global_step": 3})
    assert (tmp_path / "eval_results.txt").read_text() == "eval_accuracy = 0.25\nglobal_step = 3\nloss = 0.5\n"


def test_regression_eval():
    feats = [InputFeatures([101, i, 102], [0, 0, 0], float(i)) for i in range(5)]

    class Score(torch.nn.Module):
        def forward(self, input_ids, input_mask=None, segment_ids=None):
            return BertOutput(logits=(input_ids[:, 1:2].float() * 2))

    res = classifier.evaluate(Score(), feats, 8, ("pearson", "spearman"), 0, device="cpu", progress=False)
    assert res["eval_pearson"] == pytest.approx(1.0) and res["eval_spearman"] == pytest.approx(1.0)
    assert res["eval_loss"] == pytest.approx(np.mean([i * i for i in range(5)]))



"""The multiple-choice pipeline on a tiny model: it learns, its loss and probabilities are consistent."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from openbert.checkpoints import load_config
from openbert.tasks.multiple_choice import data as D
from openbert.tasks.multiple_choice import pipeline
from openbert.tokenization import FullTokenizer
from openbert.tasks import common
from openbert.training import TrainingArguments

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mc_fixtures import tiny_bert, write_swag  # noqa: E402

CPU = common.RunOptions(device="cpu", progress=False)


def test_learns_the_marked_ending(tmp_path, one_thread):
    folder = tiny_bert(tmp_path)
    tok = FullTokenizer(Path(folder) / "vocab.txt")
    train = D.read_examples("swag", write_swag(tmp_path / "train.csv", 160, seed=1), "train")
    dev = D.read_examples("swag", write_swag(tmp_path / "val.csv", 40, seed=2), "dev")
    model = pipeline.build_model(folder, load_config(folder))
    args = TrainingArguments(output_dir=str(tmp_path / "run"), train_batch_size=8, learning_rate=2e-3,
                             num_train_steps=60, num_warmup_steps=6, save_checkpoints_steps=None, progress=False,
                             plot=False, device="cpu")
    pipeline.train(model, D.convert_examples_to_features(train, 32, tok), args)
    dev_features = D.convert_examples_to_features(dev, 32, tok)
    res = pipeline.evaluate(model, dev_features, 8, 60, options=CPU)
    assert sorted(res) == ["eval_accuracy", "eval_loss", "global_step", "loss"]
    assert res["eval_accuracy"] > 0.8, res  # chance is 0.25
    probs = pipeline.probabilities(model, dev_features, 8, options=CPU)
    assert probs.shape == (40, 4) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert np.mean(probs.argmax(axis=1) == [f.label for f in dev_features]) == res["eval_accuracy"]
    # eval_loss is the model's own loss over one batch of everything
    model.eval()
    with torch.no_grad():
        loss = model(**D.collate(dev_features)).loss.item()
    one = pipeline.evaluate(model, dev_features, len(dev_features), 60, options=CPU)
    assert one["eval_loss"] == pytest.approx(loss, rel=1e-5) and one["loss"] == pytest.approx(loss, rel=1e-5)

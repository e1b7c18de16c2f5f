"""A tiny 'pre-trained' BERT and a learnable SWAG-format set for the multiple-choice tests."""
import csv
import random

WORDS = ["the", "a", "cat", "dog", "sat", "ran", "on", "mat", "big", "small", "red", "blue", "is", "was", "."]
HEADER = ["", "video-id", "fold-ind", "startphrase", "sent1", "sent2", "gold-source",
          "ending0", "ending1", "ending2", "ending3", "label"]


def tiny_bert(tmp_path):
    import torch

    from openbert.checkpoints import save_pretrained
    from openbert.config import BertConfig
    from openbert.model import BertModel

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n")
    config = BertConfig(vocab_size=5 + len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37, max_position_embeddings=64)
    torch.manual_seed(0)
    return save_pretrained(BertModel(config), tmp_path / "pretrained", vocab_file=vocab)


def questions(n: int, seed: int, choices: int = 4):
    """(context, endings, label): the right ending is the only one with the word "red"."""
    rng = random.Random(seed)
    plain = [w for w in WORDS if w not in ("red", ".")]
    out = []
    for _ in range(n):
        context = " ".join(rng.choice(plain) for _ in range(rng.randint(3, 6))) + " ."
        endings = [" ".join(rng.choice(plain) for _ in range(rng.randint(2, 4))) + " ." for _ in range(choices)]
        label = rng.randrange(choices)
        endings[label] = "red " + endings[label]
        out.append((context, endings, label))
    return out


def write_swag(path, n: int, seed: int, labelled: bool = True):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER if labelled else HEADER[:-1])
        for i, (context, endings, label) in enumerate(questions(n, seed)):
            row = [i, "v", i, context, context, "the", "gold", *endings] + ([label] if labelled else [])
            w.writerow(row)
    return path

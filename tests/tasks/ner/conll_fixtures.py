"""A tiny WordPiece vocabulary and CoNLL text shared by the NER tests."""
from openbert.tokenization import FullTokenizer

WORDS = ["john", "smith", "lives", "in", "paris", "and", "works", "for", "acme", "corp", "the", "city",
         "is", "big", "mary", "went", "to", "london", "run", "##ning", "##s", "."]
CONLL = """-DOCSTART- -X- -X- O

John NNP I-NP I-PER
Smith NNP I-NP I-PER
lives VBZ I-VP O
in IN I-PP O
Paris NNP I-NP I-LOC
. . O O

the DT I-NP O
city NN I-NP O
is VBZ I-VP O
big JJ I-ADJP O

-DOCSTART- -X- -X- O

Mary NNP I-NP I-PER
works VBZ I-VP O
for IN I-PP O
Acme NNP I-NP I-ORG
Corp NNP I-NP I-ORG
. . O O
"""


def write_vocab(path):
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n")
    return path


def tokenizer(tmp_path):
    return FullTokenizer(write_vocab(tmp_path / "vocab.txt"), do_lower_case=True)


def tiny_bert(tmp_path):
    """A tiny 'pre-trained' BERT folder (config, random weights, the vocabulary above)."""
    import torch

    from openbert.checkpoints import save_pretrained
    from openbert.config import BertConfig
    from openbert.model import BertModel

    vocab = write_vocab(tmp_path / "vocab.txt")
    config = BertConfig(vocab_size=5 + len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37, max_position_embeddings=64)
    torch.manual_seed(0)
    return save_pretrained(BertModel(config), tmp_path / "pretrained", vocab_file=vocab)


ENTITY = {"john": "PER", "smith": "PER", "mary": "PER", "paris": "LOC", "london": "LOC", "acme": "ORG",
          "corp": "ORG"}


def synthetic_conll(n_docs: int, seed: int, scheme: str = "iob1") -> str:
    """Documents of random sentences whose tags follow from the words (learnable), in ``scheme``."""
    import random

    rng = random.Random(seed)
    plain = [w for w in WORDS if w not in ENTITY and not w.startswith("##") and w != "."]
    out = []
    for _ in range(n_docs):
        out.append("-DOCSTART- -X- -X- O\n\n")
        for _ in range(rng.randint(2, 4)):
            words = [rng.choice(plain + list(ENTITY)) for _ in range(rng.randint(3, 9))] + ["."]
            prev = "O"
            for i, w in enumerate(words):
                kind = ENTITY.get(w)
                if kind is None:
                    tag = "O"
                elif scheme == "iob2":
                    tag = ("I-" if prev == kind else "B-") + kind
                else:  # adjacent words of one type form one entity
                    tag = "I-" + kind
                out.append(f"{w.capitalize()} X X {tag}\n")
                prev = kind or "O"
            out.append("\n")
    return "".join(out)

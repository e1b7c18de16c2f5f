"""Learning a WordPiece vocabulary that works with FullTokenizer."""
from __future__ import annotations

import pytest

from openbert import cli
from openbert.errors import OpenBertError
from openbert.io.fileio import expand_input_files
from openbert.tokenization import vocab as vocab_builder
from openbert.tokenization.wordpiece import FullTokenizer, load_vocab


def test_special_tokens_follow_googles_layout(shared_data):
    google = load_vocab(shared_data / "vocab" / "bert-base-uncased-vocab.txt")
    head = list(google)[:999]  # [PAD], 994 unused slots around [UNK] [CLS] [SEP] [MASK], then "!"
    assert vocab_builder.special_tokens(994) == head
    assert list(google)[999] == "!"


def test_special_tokens_with_few_unused_slots():
    assert vocab_builder.special_tokens(0) == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert vocab_builder.special_tokens(2) == ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]",
                                               "[SEP]", "[MASK]"]
    toks = vocab_builder.special_tokens(100)
    assert toks.index("[UNK]") == 100 and toks[-1] == "[unused99]" and len(toks) == 105
    with pytest.raises(OpenBertError, match="--num_unused"):
        vocab_builder.special_tokens(-1)


@pytest.fixture(scope="module")
def learned(shared_data, tmp_path_factory):
    """A 6000-token uncased vocabulary learned from WikiText-2 valid."""
    files = [str(shared_data / "corpus" / "wikitext-2" / "valid.txt")]
    tokens = vocab_builder.learn_vocab(vocab_builder.read_lines(files), vocab_size=6000)
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab_builder.write_vocab(tokens, path)
    return tokens, path


def test_learned_vocab_layout(learned):
    tokens, path = learned
    assert len(tokens) == 6000 and len(set(tokens)) == 6000
    assert tokens[:105] == vocab_builder.special_tokens(100)
    assert all(t and not any(c.isspace() for c in t) for t in tokens)
    # Uncased: every learned piece is what BasicTokenizer(do_lower_case=True) can produce.
    assert not any(c.isupper() for t in tokens[105:] for c in t)
    assert "the" in tokens and "##s" in tokens and "," in tokens
    assert list(load_vocab(path)) == tokens


@pytest.mark.parametrize("rel,limit", [("corpus/wikitext-2/test.txt", 0.002),
                                       ("glue/MRPC/msr_paraphrase_test.txt", 0.005)])
def test_held_out_text_has_few_unknowns(shared_data, learned, rel, limit):
    _, path = learned
    lines = (shared_data / rel).read_text(encoding="utf-8").split("\n")
    rate = vocab_builder.unk_rate(path, lines, do_lower_case=True)
    assert rate < limit
    tok = FullTokenizer(path)
    pieces = tok.tokenize("The quick brown fox jumps over the lazy dog.")
    assert "[UNK]" not in pieces and pieces[-1] == "."
    assert "".join(p[2:] if p.startswith("##") else " " + p for p in pieces[:-1]).strip() == \
        "the quick brown fox jumps over the lazy dog"


def test_cased_vocab_keeps_case(shared_data):
    lines = (shared_data / "corpus" / "tinyshakespeare.txt").read_text(encoding="utf-8").split("\n")
    tokens = vocab_builder.learn_vocab([lines[:5000]], vocab_size=1500, do_lower_case=False,
                                       num_unused=0)
    assert tokens[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert "First" in tokens or "##F" in tokens or "F" in tokens
    assert any(c.isupper() for t in tokens[5:] for c in t)


def test_too_small_vocab_is_an_error():
    with pytest.raises(OpenBertError, match="leaves no room"):
        vocab_builder.learn_vocab([["some text"]], vocab_size=105, num_unused=100)
    with pytest.raises(OpenBertError, match="no words"):
        vocab_builder.learn_vocab([["", "  \t"]], vocab_size=200)


def test_input_patterns(tmp_path):
    (tmp_path / "a.txt").write_text("x\n")
    (tmp_path / "b.txt").write_text("y\n")
    files = expand_input_files(f"{tmp_path}/*.txt, {tmp_path}/a.txt")
    assert files == [str(tmp_path / "a.txt"), str(tmp_path / "b.txt"), str(tmp_path / "a.txt")]
    with pytest.raises(OpenBertError, match="matches no file"):
        expand_input_files(f"{tmp_path}/*.json")


def test_build_vocab_command(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_bytes("Caf\u00e9 au lait, s'il vous pla\u00eet.\nThe caf\u00e9 is open.\n".encode()
                     * 50 + b"bad \xff byte\n")
    out = tmp_path / "vocab.txt"
    rc = cli.main(["build-vocab", f"--input_file={text}", f"--output_file={out}",
                   "--vocab_size=200", "--num_unused=3", "--progress=false"])
    assert rc == 0
    vocab = list(load_vocab(out))
    assert vocab[:8] == ["[PAD]", "[unused0]", "[unused1]", "[unused2]", "[UNK]", "[CLS]", "[SEP]",
                         "[MASK]"]
    assert "cafe" in vocab  # lower-cased and accents stripped, as FullTokenizer will see it
    tok = FullTokenizer(out)
    assert "[UNK]" not in tok.tokenize("The caf\u00e9 au lait is open.")

    before = out.read_bytes()
    rc = cli.main(["build-vocab", f"--input_file={tmp_path}/missing*.txt", f"--output_file={out}"])
    assert rc == 2 and "matches no file" in capsys.readouterr().err
    assert out.read_bytes() == before  # the earlier vocabulary is untouched

"""fill-mask: [MASK] in user text, top-k from the masked-LM head, a clear error without that head."""
from __future__ import annotations

import csv
import json
import random

import pytest
import torch

from openbert.checkpoints.pretrained import save_tf_checkpoint
from openbert.cli import main
from openbert.config import BertConfig
from openbert.errors import OpenBertError
from openbert.model.bert import BertForPreTraining
from openbert.tasks.features.fill_mask import fill_mask, load_mlm, make_feature, tokenize_with_masks
from openbert.tokenization.wordpiece import FullTokenizer


@pytest.fixture(scope="module")
def tokenizer(shared_data):
    return FullTokenizer(shared_data / "vocab" / "bert-base-uncased-vocab.txt", do_lower_case=True)


def test_mask_in_text_is_the_mask_token(tokenizer):
    assert tokenizer.tokenize("the [MASK] .") == ["the", "[", "mask", "]", "."]  # the plain tokenizer
    assert tokenize_with_masks(tokenizer, "The man went to the [MASK].") == \
        ["the", "man", "went", "to", "the", "[MASK]", "."]
    assert tokenize_with_masks(tokenizer, "[mask] [MASK]ed") == ["[MASK]", "[MASK]", "ed"]
    f = make_feature("paris is the [MASK] of france . ||| it is [MASK] .", 0, tokenizer, 128)
    assert f.tokens[f.masked_lm_positions[0]] == f.tokens[f.masked_lm_positions[1]] == "[MASK]"
    assert f.masked_lm_positions == [4, 11] and f.segment_ids[11] == 1
    with pytest.raises(OpenBertError, match="has no \\[MASK\\] in the text"):
        make_feature("no mask here", 0, tokenizer, 128)
    with pytest.raises(OpenBertError, match="after truncation"):
        make_feature("a b c d e f [MASK]", 0, tokenizer, 6)


def _sentences(shared_data, n):
    with open(shared_data / "glue" / "MRPC" / "msr_paraphrase_train.txt", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    return [r[3] for r in rows[:n]]


@pytest.fixture(scope="module")
def memorized(tmp_path_factory, shared_data, tokenizer):
    """A tiny BertForPreTraining trained hard (masked LM, AdamW) on 24 real MRPC sentences, so that it
    knows them by heart; saved as a TF checkpoint. Returns (folder, model, sentences)."""
    torch.manual_seed(0)
    rng = random.Random(0)
    sentences = _sentences(shared_data, 24)
    config = BertConfig(vocab_size=len(tokenizer.vocab), hidden_size=64, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=128, max_position_embeddings=128,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = BertForPreTraining(config)
    ids = [tokenizer.convert_tokens_to_ids(["[CLS]", *tokenizer.tokenize(s)[:40], "[SEP]"]) for s in sentences]
    mask_id = tokenizer.vocab["[MASK]"]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(250):
        batch = [ids[i] for i in rng.sample(range(len(ids)), 16)]
        seq = max(map(len, batch))
        input_ids = torch.zeros(16, seq, dtype=torch.long)
        input_mask = torch.zeros_like(input_ids)
        positions = torch.zeros(16, 4, dtype=torch.long)
        labels = torch.zeros_like(positions)
        for r, x in enumerate(batch):
            pos = sorted(rng.sample(range(1, len(x) - 1), 4))
            input_ids[r, :len(x)] = torch.tensor(x)
            input_mask[r, :len(x)] = 1
            positions[r] = torch.tensor(pos)
            labels[r] = input_ids[r, pos]
            input_ids[r, pos] = mask_id
        out = model(input_ids, input_mask, masked_lm_positions=positions, masked_lm_ids=labels)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    model.eval()
    folder = tmp_path_factory.mktemp("mlm")
    save_tf_checkpoint(model, folder, vocab_file=str(shared_data / "vocab" / "bert-base-uncased-vocab.txt"))
    return folder, model, sentences


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, shared_data, tokenizer):
    """A tiny model pre-trained with `openbert create-pretraining-data` + `openbert pretrain` on real
    MRPC sentences (documents of 4 sentences); returns (output folder, model, sentences)."""
    tmp = tmp_path_factory.mktemp("mlm")
    vocab = shared_data / "vocab" / "bert-base-uncased-vocab.txt"
    sentences = _sentences(shared_data, 24)
    (tmp / "corpus.txt").write_text("".join(s + ("\n\n" if i % 4 == 3 else "\n") for i, s in enumerate(sentences)),
                                    encoding="utf-8")
    BertConfig(vocab_size=len(tokenizer.vocab), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
               intermediate_size=128, max_position_embeddings=128, hidden_dropout_prob=0.0,
               attention_probs_dropout_prob=0.0).to_json_file(tmp / "bert_config.json")
    assert main(["create-pretraining-data", f"--input_file={tmp / 'corpus.txt'}", f"--output_file={tmp / 'data'}",
                 f"--vocab_file={vocab}", "--max_seq_length=64", "--max_predictions_per_seq=10",
                 "--dupe_factor=20", "--progress=false"]) == 0
    assert main(["pretrain", f"--input_file={tmp / 'data'}", f"--output_dir={tmp / 'out'}", "--do_train",
                 f"--bert_config_file={tmp / 'bert_config.json'}", f"--vocab_file={vocab}", "--max_seq_length=64",
                 "--max_predictions_per_seq=10", "--train_batch_size=16", "--num_train_steps=200",
                 "--num_warmup_steps=10", "--learning_rate=2e-3", "--save_checkpoints_steps=0",
                 "--progress=false", "--log_every_n_steps=100"]) == 0
    return tmp / "out", load_mlm(str(tmp / "out")).eval(), sentences


def _masked_texts(sentences, tokenizer, seed=1):
    """Each sentence with one random single-piece word replaced by [MASK]; (texts, answers)."""
    rng = random.Random(seed)
    texts, answers = [], []
    for s in sentences:
        words = s.split()
        i = rng.randrange(len(words))
        if tokenizer.tokenize(words[i]) != [words[i].lower()]:
            continue
        texts.append(" ".join(words[:i] + ["[MASK]"] + words[i + 1:]))
        answers.append(words[i].lower())
    return texts, answers


def test_fill_mask_on_a_model_from_openbert_pretrain(pretrained, tokenizer, shared_data):
    """After `openbert pretrain` on real text, the top-k are words of that text and the masked
    words are far more likely than under the same model untrained."""
    folder, model, sentences = pretrained
    texts, answers = _masked_texts(sentences, tokenizer)
    corpus_tokens = {t for s in sentences for t in tokenizer.tokenize(s)}
    trained = fill_mask(model, tokenizer, texts, top_k=len(tokenizer.vocab), device="cpu")
    torch.manual_seed(0)
    untrained = fill_mask(BertForPreTraining(model.config).eval(), tokenizer, texts,
                          top_k=len(tokenizer.vocab), device="cpu")
    better = 0
    for r, u, answer in zip(trained, untrained, answers):
        top5 = [p["token"] for p in r["masks"][0]["predictions"][:5]]
        assert set(top5) <= corpus_tokens, top5
        p_trained = next(p["probability"] for p in r["masks"][0]["predictions"] if p["token"] == answer)
        p_untrained = next(p["probability"] for p in u["masks"][0]["predictions"] if p["token"] == answer)
        better += p_trained > 10 * p_untrained
    assert better == len(texts) >= 10


def test_fill_mask_predicts_the_words_it_was_trained_on(memorized, tokenizer):
    _, model, sentences = memorized
    texts, answers = _masked_texts(sentences, tokenizer)
    results = fill_mask(model, tokenizer, texts, top_k=5, batch_size=4, device="cpu")
    assert [r["text"] for r in results] == texts
    hits = 0
    for r, answer in zip(results, answers):
        (m,) = r["masks"]
        probs = [p["probability"] for p in m["predictions"]]
        assert len(probs) == 5 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        hits += answer in [p["token"] for p in m["predictions"]]
    assert len(texts) >= 10 and hits / len(texts) >= 0.8, (hits, len(texts))


def test_fill_mask_command(memorized, tmp_path, capsys):
    folder, model, sentences = memorized
    text = sentences[0].replace("brother", "[MASK]", 1)
    assert main(["fill-mask", f"--init_checkpoint={folder}", "--top_k=3", text]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == text and printed[1].startswith("  [MASK] 1 (token ") and len(printed) == 2
    assert "brother" in printed[1]
    (tmp_path / "in.txt").write_text(f"{text}\n[MASK] said .\n", encoding="utf-8")
    prefix = save_tf_checkpoint(model, tmp_path / "tf", vocab_file=str(folder / "vocab.txt"))  # the TF layout too
    assert main(["fill-mask", f"--init_checkpoint={prefix}", f"--input_file={tmp_path / 'in.txt'}",
                 f"--output_file={tmp_path / 'out.jsonl'}"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [len(r["masks"]) for r in rows] == [1, 1] and len(rows[1]["masks"][0]["predictions"]) == 5
    assert "brother" in [p["token"] for p in rows[0]["masks"][0]["predictions"]]


def test_checkpoint_without_mlm_head_is_a_clear_error(minilm_dir, capsys):
    assert main(["fill-mask", f"--init_checkpoint={minilm_dir}", "the man went to the [MASK] ."]) == 2
    err = capsys.readouterr().err
    assert "has no masked-LM head" in err and "Traceback" not in err


def test_no_text_and_bad_top_k(memorized, capsys):
    folder, model, _ = memorized
    assert main(["fill-mask", f"--init_checkpoint={folder}"]) == 2
    assert "no text given" in capsys.readouterr().err
    with pytest.raises(OpenBertError, match="--top_k must be at least 1"):
        fill_mask(model, None, ["[MASK]"], top_k=0)

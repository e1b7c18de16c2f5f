"""openbert.pipeline: the same outputs as the tasks' own entry points (encode, classifier,
run_squad predictions, fill-mask), plain Python objects, clear errors."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import openbert
from openbert.errors import OpenBertError
from openbert.tasks.features.extract import SequenceTooLong
from openbert.serve.pipelines import NerPipeline, head_tasks, inspect_checkpoint, load_model

TEXTS = ["the cat sat on the mat", "paris is the capital of france", "who went to the store ?",
         "a", "the big red dog went north and the small blue cat went south"]


@pytest.fixture(scope="module")
def embed(tiny_models):
    return openbert.pipeline("embed", model=tiny_models["mlm"])


def test_importing_openbert_loads_neither_the_server_nor_the_pipelines():
    code = ("import sys, openbert; bad = [m for m in sys.modules if m.startswith(('openbert.serve', "
            "'starlette', 'uvicorn'))]; assert not bad, bad; assert callable(openbert.pipeline)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_embed_equals_encode_and_returns_lists(embed, tiny_models):
    inputs = [*TEXTS, ("the cat", "sat on the mat"), "the dog ||| went to the store"]
    got = embed(inputs)
    assert isinstance(got, list) and all(isinstance(v, list) and isinstance(v[0], float) for v in got)
    ref = openbert.encode(inputs, tiny_models["mlm"], max_seq_length=64)
    np.testing.assert_allclose(np.array(got), ref, atol=1e-4)
    single = embed("the cat sat on the mat")
    np.testing.assert_allclose(single, ref[0], atol=1e-4)
    unit = np.array(embed(TEXTS, normalize=True))
    np.testing.assert_allclose(unit, ref[:5] / np.linalg.norm(ref[:5], axis=1, keepdims=True), atol=1e-5)
    cls = openbert.pipeline("embed", model=tiny_models["mlm"], pooling="cls")
    np.testing.assert_allclose(cls(TEXTS), openbert.encode(TEXTS, tiny_models["mlm"], pooling="cls",
                                                          max_seq_length=64), atol=1e-4)


def test_the_three_stages_give_the_same_result_in_any_batch(embed):
    """The server runs forward on batches mixing requests: the result must not depend on the mix."""
    prepared = embed.prepare(TEXTS)
    assert prepared.lengths == [len(f.input_ids) for f in prepared.features]
    whole = embed.finish(prepared, embed.forward(prepared.features))
    parts = [r for f in prepared.features for r in embed.forward([f])]
    np.testing.assert_allclose(np.array(embed.finish(prepared, parts)), np.array(whole), atol=1e-5)


def test_truncation_and_options(embed):
    long = "the cat sat on the mat " * 20
    assert len(embed(long)) == 32  # truncated to the model's 64 positions by default
    with pytest.raises(SequenceTooLong, match="more than max_seq_length 64"):
        embed([long], truncate=False)
    with pytest.raises(OpenBertError, match="unknown option"):
        embed(["x"], pooling="cls")
    with pytest.raises(OpenBertError, match="option normalize must be bool"):
        embed(["x"], normalize="yes")
    with pytest.raises(OpenBertError, match="input 2: expected a string"):
        embed(["x", 3])
    with pytest.raises(OpenBertError, match="only trained up to sequence length 64"):
        openbert.pipeline("embed", model=embed.loaded.path, max_seq_length=65)


def test_classify_labels_from_id2label_and_scores_equal_the_classifier(tiny_models):
    from openbert.tasks.classification.pipeline import probabilities
    from openbert.tasks.classification.data import InputExample, convert_examples_to_features

    pipe = openbert.pipeline("classify", model=tiny_models["cls"])
    inputs = [*TEXTS, ("great movie", "bad film")]
    got = pipe(inputs)
    examples = [InputExample(str(i), *(x if isinstance(x, tuple) else (x,)), label="neg")
                for i, x in enumerate(inputs)]
    features = convert_examples_to_features(examples, ["neg", "neu", "pos"], 64, pipe.tokenizer)
    ref = probabilities(pipe.model, features, 8, progress=False)
    for g, p in zip(got, ref):
        assert list(g["scores"]) == ["neg", "neu", "pos"]
        np.testing.assert_allclose(list(g["scores"].values()), p, atol=1e-5)
        assert g["label"] == ["neg", "neu", "pos"][int(np.argmax(p))] and g["score"] == max(g["scores"].values())
    single = pipe("great movie ||| bad film")
    assert single["label"] == got[-1]["label"] and single["scores"] == pytest.approx(got[-1]["scores"])


def _squad_file(path, items):
    data = {"version": "1.1", "data": [{"title": "t", "paragraphs": [
        {"context": x["context"], "qas": [{"id": str(i), "question": x["question"], "answers": []}]}
        for i, x in enumerate(items)]}]}
    path.write_text(json.dumps(data), encoding="utf-8")


QA = [{"question": "where did the cat sit ?", "context": "The  cat sat on the mat.\nParis is the capital of France."},
      {"question": "what is the capital of france ?",
       "context": " ".join(["Paris is the capital of France, a big city on a river in the north."] * 6)},
      {"question": "who went ?", "context": "A man went to the store."}]


def test_qa_answers_equal_run_squad_predictions_with_offsets_into_the_context(tiny_models, tmp_path):
    from openbert.cli import main

    pipe = openbert.pipeline("qa", model=tiny_models["qa"], doc_stride=16, max_query_length=16)
    got = pipe(QA)
    _squad_file(tmp_path / "dev.json", QA)
    rc = main(["squad", "--do_predict", f"--predict_file={tmp_path / 'dev.json'}",
               f"--init_checkpoint={tiny_models['qa']}", f"--output_dir={tmp_path / 'out'}",
               "--max_seq_length=64", "--doc_stride=16", "--max_query_length=16", "--noprogress"])
    assert rc == 0
    predictions = json.loads((tmp_path / "out" / "predictions.json").read_text())
    nbest = json.loads((tmp_path / "out" / "nbest_predictions.json").read_text())
    assert len(pipe.prepare(QA[1:2]).features) > 1  # the long context needs several windows
    for i, (g, x) in enumerate(zip(got, QA)):
        assert g["answer"] == predictions[str(i)]
        assert g["score"] == pytest.approx(nbest[str(i)][0]["probability"])
        assert " ".join(x["context"][g["start"]:g["end"]].split()) == g["answer"]
    single = pipe(("who went ?", "A man went to the store."))
    assert single == {**got[2], "score": pytest.approx(got[2]["score"], abs=1e-6)}


def test_qa_no_answer_for_squad2_models(tiny_models):
    v2 = openbert.pipeline("qa", model=tiny_models["qa2"])
    assert v2.version_2_with_negative
    none = v2(QA[0], null_score_diff_threshold=-1e9)
    assert none["answer"] == "" and none["start"] is None and none["end"] is None
    some = v2(QA[0], null_score_diff_threshold=1e9)
    assert some["answer"] and some["start"] is not None
    assert not openbert.pipeline("qa", model=tiny_models["qa"]).version_2_with_negative
    with pytest.raises(OpenBertError, match="the context is empty"):
        v2({"question": "q", "context": "  "})
    with pytest.raises(OpenBertError, match="max_answer_length must be at least 1"):
        v2(QA[0], max_answer_length=0)


def test_fill_mask_equals_the_fill_mask_task(tiny_models):
    from openbert.tasks.features.fill_mask import fill_mask

    pipe = openbert.pipeline("fill-mask", model=tiny_models["mlm"])
    texts = ["the [MASK] sat on the mat", "paris is the [MASK] of [MASK] . ||| it is big"]
    ref = fill_mask(pipe.model, pipe.tokenizer, texts, top_k=3, max_seq_length=64)
    got = pipe(texts, top_k=3)
    assert [g["tokens"] for g in got] == [r["tokens"] for r in ref]
    for g, r in zip(got, ref):
        for gm, rm in zip(g["masks"], r["masks"]):
            assert gm["position"] == rm["position"]
            assert [p["token"] for p in gm["predictions"]] == [p["token"] for p in rm["predictions"]]
            np.testing.assert_allclose([p["probability"] for p in gm["predictions"]],
                                       [p["probability"] for p in rm["predictions"]], atol=1e-6)
    # features of calls with different top_k in one forward: each keeps its own k
    a, b = pipe.prepare(texts[:1], top_k=1), pipe.prepare(texts[1:], top_k=4)
    raw = pipe.forward(a.features + b.features)
    assert len(pipe.finish(a, raw[:1])[0]["masks"][0]["predictions"]) == 1
    assert len(pipe.finish(b, raw[1:])[0]["masks"][0]["predictions"]) == 4
    with pytest.raises(OpenBertError, match="has no \\[MASK\\]"):
        pipe("no mask here")


def test_models_serve_the_tasks_their_heads_support(tiny_models):
    assert inspect_checkpoint(tiny_models["mlm"])[1] == ("fill-mask", "embed")
    assert inspect_checkpoint(tiny_models["cls"])[1] == ("classify", "embed")
    assert inspect_checkpoint(tiny_models["qa"])[1] == ("qa", "embed")
    assert head_tasks({"classifier.weight"}, ["BertForMultipleChoice"]) == ("embed",)
    loaded = load_model(tiny_models["cls"])
    assert loaded.tasks == ("classify", "embed") and type(loaded.model).__name__ == "BertForSequenceClassification"
    assert type(load_model(tiny_models["cls"], "embed").model).__name__ == "BertModel"
    with pytest.raises(OpenBertError, match="cannot do qa: it needs a question-answering head"):
        openbert.pipeline("qa", model=tiny_models["mlm"])
    with pytest.raises(OpenBertError, match="cannot do fill-mask"):
        openbert.pipeline("fill-mask", model=tiny_models["cls"])
    with pytest.raises(OpenBertError, match="unknown task"):
        openbert.pipeline("summarize", model=tiny_models["cls"])
    with pytest.raises(OpenBertError, match="not a named model"):
        openbert.pipeline("embed", model="no-such-model")


def _first_subtoken_tags(pipe, words):
    """The tags an independent pass gives: [CLS] pieces [SEP] through the model, argmax at each
    word's first sub-token."""
    import torch

    ids, firsts = [pipe.tokenizer.convert_tokens_to_ids(["[CLS]"])[0]], []
    for w in words:
        firsts.append(len(ids))
        ids.extend(pipe.tokenizer.convert_tokens_to_ids(pipe.tokenizer.tokenize(w)) or
                   pipe.tokenizer.convert_tokens_to_ids(["[UNK]"]))
    ids.append(pipe.tokenizer.convert_tokens_to_ids(["[SEP]"])[0])
    with torch.no_grad():
        logits = pipe.model(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long),
                            torch.zeros(1, len(ids), dtype=torch.long)).logits[0]
    return [pipe.labels[int(logits[i].argmax())] for i in firsts]


def test_ner_tags_each_word_from_its_first_sub_token_with_character_offsets(tiny_models):
    from openbert.tasks.ner.metrics import chunks

    pipe = openbert.pipeline("ner", model=tiny_models["ner"])
    assert pipe.labels == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    text = "John  Smith sat on the mat, where the big dog ran."
    out = pipe(text)
    assert out["words"] == ["John", "Smith", "sat", "on", "the", "mat", ",", "where", "the", "big", "dog",
                            "ran", "."]
    assert out["tags"] == _first_subtoken_tags(pipe, out["words"])
    assert [(e["type"], e["first_word"], e["last_word"] + 1) for e in out["entities"]] == chunks(out["tags"])
    assert out["entities"], "the biased head finds entities"
    for e in out["entities"]:
        assert e["text"] == text[e["start"]:e["end"]]
        assert text[e["start"]:e["end"]].startswith(out["words"][e["first_word"]])
        assert 0 < e["score"] <= 1
    words = ["the", "cat", "sat", "on", "the", "mat"]
    given = pipe([words, text])
    assert given[0]["words"] == words and given[0]["text"] == "the cat sat on the mat"
    assert given[0]["tags"] == _first_subtoken_tags(pipe, words) and given[1] == out
    with pytest.raises(OpenBertError, match="input 2: expected a text or a list of non-empty words"):
        pipe(["a", ["the", ""]])


def test_ner_windows_predict_every_word_of_a_long_text_once(tiny_models):
    pipe = openbert.pipeline("ner", model=tiny_models["ner"])  # 64 positions: 62 sub-tokens a window
    text = " ".join(["john smith sat on the mat"] * 30)  # 180 words
    prepared = pipe.prepare([text])
    assert len(prepared.features) > 2
    predicted = sorted(w for f in prepared.features for w in f.words)
    assert predicted == list(range(180))
    out = pipe(text)
    assert len(out["tags"]) == 180 and all(out["tags"])
    # a word far from a window's edge is tagged as in a short text with the same neighbours
    assert pipe("a b c")["tags"] == _first_subtoken_tags(pipe, ["a", "b", "c"])


def test_ner_needs_a_token_classifier_with_tag_names(tiny_models, tmp_path):
    from openbert.checkpoints import save_pretrained
    from openbert.model.bert import BertForTokenClassification

    assert inspect_checkpoint(tiny_models["ner"])[1] == ("ner", "embed")
    with pytest.raises(OpenBertError, match="cannot do ner: it needs a token classifier"):
        openbert.pipeline("ner", model=tiny_models["cls"])
    loaded = load_model(tiny_models["ner"])
    model = BertForTokenClassification(loaded.config.replace(extra={}), num_labels=5)
    save_pretrained(model, tmp_path / "nolabels", vocab_file=tiny_models["ner"] / "vocab.txt")
    plain = openbert.pipeline("ner", model=tmp_path / "nolabels")  # HF's LABEL_i names: tags, no entities
    assert plain.labels == [f"LABEL_{i}" for i in range(5)] and plain("the cat")["entities"] == []
    bare = load_model(tmp_path / "nolabels")
    bare.model.config = bare.config.replace(extra={})  # a config with no id2label at all
    with pytest.raises(OpenBertError, match="has no tag names for its 5 outputs"):
        NerPipeline(bare)

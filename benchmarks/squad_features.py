"""SQuAD feature conversion speed: openbert vs the original's per-question algorithm.

The peer re-tokenizes every context word of every question with FullTokenizer, as run_squad.py's
convert_examples_to_features does; openbert tokenizes each paragraph once and memoises words. Both
produce the same features (checked). Data: a SQuAD-format file built from all of CoNLL-2003 train
(openbert.tasks.squad.synth), Google's uncased vocab. Repetitions are interleaved; ratios printed.

    python benchmarks/squad_features.py [--reps 3]
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from openbert.tasks.squad import data as squad
from openbert.tasks.squad import synth as squad_synth
from openbert.tokenization.wordpiece import FullTokenizer

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def original_features(examples, tokenizer, max_seq_length, doc_stride, max_query_length):
    """The original's cost profile: per question, every word re-tokenized; same outputs."""
    out = []
    for example_index, ex in enumerate(examples):
        query = tokenizer.tokenize(ex.question_text)[:max_query_length]
        tok_to_orig, all_doc = [], []
        for i, word in enumerate(ex.doc_tokens):
            pieces = tokenizer.tokenize(word)
            tok_to_orig.extend([i] * len(pieces))
            all_doc.extend(pieces)
        spans = squad.doc_spans_for(len(all_doc), max_seq_length - len(query) - 3, doc_stride)
        for span_index, (start, length) in enumerate(spans):
            tokens = ["[CLS]"] + query + ["[SEP]"]
            to_orig, is_max = {}, {}
            for i in range(length):
                to_orig[len(tokens)] = tok_to_orig[start + i]
                is_max[len(tokens)] = squad.max_context_span(spans, start + i) == span_index
                tokens.append(all_doc[start + i])
            tokens.append("[SEP]")
            out.append((tokens, tokenizer.convert_tokens_to_ids(tokens), to_orig, is_max))
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    tokenizer = FullTokenizer(DATA / "vocab" / "bert-base-uncased-vocab.txt", do_lower_case=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.json"
        path.write_text(json.dumps(squad_synth.build(DATA / "conll2003" / "eng.train", sentences_per_paragraph=6)))
        examples = squad.read_squad_examples(path, is_training=False)
    settings = (384, 128, 64)
    ours = squad.convert_examples_to_features(examples, tokenizer, *settings, is_training=False)
    peer = original_features(examples, tokenizer, *settings)
    assert [(f.tokens, f.input_ids, f.token_to_orig_map, f.token_is_max_context) for f in ours] == peer
    t_ours, t_peer = [], []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        squad.convert_examples_to_features(examples, tokenizer, *settings, is_training=False)
        t_ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        original_features(examples, tokenizer, *settings)
        t_peer.append(time.perf_counter() - t0)
    n = len(examples)
    mo, mp = statistics.median(t_ours), statistics.median(t_peer)
    print(f"{n} questions, {len(ours)} windows (max_seq_length 384, doc_stride 128)")
    print(f"openbert:            {mo:.2f} s  ({n / mo:,.0f} questions/s)")
    print(f"original algorithm:  {mp:.2f} s  ({n / mp:,.0f} questions/s)")
    print(f"speed-up: {mp / mo:.1f}x")


if __name__ == "__main__":
    main()

"""The original create_pretraining_data.py algorithm in plain Python: string tokens, the exact
tokenizer line by line, the stdlib ``random.Random`` methods, one ``tf.train.Example`` serialized
per instance. The peer of benchmarks/pretraining.py and the reference of
tests/test_data_pretraining.py (openbert's fast path must produce the same instances).

    original_instances(files, tokenizer, cfg) -> [(tokens, segment_ids, is_random_next,
                                                   masked_lm_positions, masked_lm_labels)]
"""
from __future__ import annotations

import random

from openbert.io.tfrecord import TFRecordWriter, encode_example


def original_instances(files, tokenizer, cfg):
    """All instances of ``files`` read as one corpus (the original's run), in output order."""
    docs = [[]]
    for path in files:
        with open(path, encoding="utf-8", newline="\n") as f:
            for line in f:
                line = line.strip()
                if not line:
                    docs.append([])
                tokens = tokenizer.tokenize(line)
                if tokens:
                    docs[-1].append(tokens)
    docs = [d for d in docs if d]
    rng = random.Random(cfg.random_seed)
    rng.shuffle(docs)
    words = list(tokenizer.vocab.keys())
    instances = []
    for _ in range(cfg.dupe_factor):
        for di in range(len(docs)):
            instances.extend(_document(docs, di, cfg, words, rng))
    rng.shuffle(instances)
    return instances


def write_tfrecord(instances, tokenizer, cfg, out_path) -> None:
    """The original's write_instance_to_example_files for one output file."""
    with TFRecordWriter(out_path) as w:
        for tokens, segs, is_random, pos, labels in instances:
            ids = tokenizer.convert_tokens_to_ids(tokens)
            pad = cfg.max_seq_length - len(ids)
            mids = tokenizer.convert_tokens_to_ids(labels)
            ppad = cfg.max_predictions_per_seq - len(pos)
            w.write(encode_example(
                {"input_ids": ids + [0] * pad, "input_mask": [1] * len(ids) + [0] * pad,
                 "segment_ids": segs + [0] * pad, "masked_lm_positions": pos + [0] * ppad,
                 "masked_lm_ids": mids + [0] * ppad, "next_sentence_labels": [int(is_random)]},
                {"masked_lm_weights": [1.0] * len(pos) + [0.0] * ppad}))


def _document(docs, di, cfg, words, rng):
    doc = docs[di]
    max_num = cfg.max_seq_length - 3
    target = max_num
    if rng.random() < cfg.short_seq_prob:
        target = rng.randint(2, max_num)
    out, chunk, length, i = [], [], 0, 0
    while i < len(doc):
        chunk.append(doc[i])
        length += len(doc[i])
        if i == len(doc) - 1 or length >= target:
            a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
            a = [t for seg in chunk[:a_end] for t in seg]
            b = []
            if len(chunk) == 1 or rng.random() < 0.5:
                is_random = True
                for _ in range(10):
                    ri = rng.randint(0, len(docs) - 1)
                    if ri != di:
                        break
                rdoc = docs[ri]
                for j in range(rng.randint(0, len(rdoc) - 1), len(rdoc)):
                    b.extend(rdoc[j])
                    if len(b) >= target - len(a):
                        break
                i -= len(chunk) - a_end
            else:
                is_random = False
                b = [t for seg in chunk[a_end:] for t in seg]
            while len(a) + len(b) > max_num:
                trunc = a if len(a) > len(b) else b
                if rng.random() < 0.5:
                    del trunc[0]
                else:
                    trunc.pop()
            tokens = ["[CLS]"] + a + ["[SEP]"] + b + ["[SEP]"]
            segs = [0] * (len(a) + 2) + [1] * (len(b) + 1)
            masked, positions, labels = _mask(tokens, cfg, words, rng)
            out.append((masked, segs, is_random, positions, labels))
            chunk, length = [], 0
        i += 1
    return out


def _mask(tokens, cfg, words, rng):
    cand = []
    for i, t in enumerate(tokens):
        if t in ("[CLS]", "[SEP]"):
            continue
        if cfg.do_whole_word_mask and cand and t.startswith("##"):
            cand[-1].append(i)
        else:
            cand.append([i])
    rng.shuffle(cand)
    output = list(tokens)
    num = min(cfg.max_predictions_per_seq, max(1, int(round(len(tokens) * cfg.masked_lm_prob))))
    chosen, covered = [], set()
    for group in cand:
        if len(chosen) >= num:
            break
        if len(chosen) + len(group) > num or any(i in covered for i in group):
            continue
        for i in group:
            covered.add(i)
            if rng.random() < 0.8:
                output[i] = "[MASK]"
            elif rng.random() >= 0.5:
                output[i] = words[rng.randint(0, len(words) - 1)]
            chosen.append((i, tokens[i]))
    chosen.sort()
    return output, [i for i, _ in chosen], [t for _, t in chosen]

"""A SWAG-format multiple-choice set built from real text (for tests and benchmarks, where SWAG
itself is not at hand).

Each question is a sentence (``sent1``), the first words of the sentence that really follows it in
the same paragraph (``sent2``), and four endings: the true rest of that sentence and the rests of
three sentences from other documents of the same split, chosen among random candidates as the
closest to the true ending in length (so length gives nothing away). The right ending's position
is drawn at random. Documents are split between train / val / test, so no text is shared.

Input: WikiText files (``= Title =`` lines start documents, ``= = Section = =`` lines are skipped,
``@-@`` / ``@,@`` / ``@.@`` are joined, sentences with ``<unk>`` are dropped and split their
paragraph in two) or any plain text
with one paragraph per line and blank lines between documents.

    python -m openbert.tasks.multiple_choice.synth --input_file=wikitext-2/valid.txt,wikitext-2/test.txt \\
        --output_dir=/tmp/swag_wikitext
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import random
import re
import sys
from typing import Sequence

from ...errors import OpenBertError
from ...io.fileio import atomic_write_text, expand_input_files

COLUMNS = ["video-id", "fold-ind", "startphrase", "sent1", "sent2", "gold-source",
           "ending0", "ending1", "ending2", "ending3", "label"]
_SENTENCE_END = re.compile(r"(?<= [.!?]) (?=\S)")
_JOINERS = {" @-@ ": "-", " @,@ ": ",", " @.@ ": "."}


def read_documents(paths: Sequence[str]) -> list[list[list[str]]]:
    """Documents -> runs of consecutive sentences -> sentences (strings), from WikiText-style or plain
    text files."""
    documents: list[list[list[str]]] = []
    for path in paths:
        wiki = _wikitext(path)
        current: list[list[str]] = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                text = line.strip()
                title = wiki and text.startswith("= ") and text.endswith(" =")
                if (title and not text.startswith("= =")) or (not text and not wiki):
                    if current:
                        documents.append(current)
                        current = []
                if not text or title:
                    continue
                for old, new in _JOINERS.items():
                    text = text.replace(old, new)
                run: list[str] = []  # a sentence with <unk> ends a run: its neighbours are not consecutive
                for sentence in _SENTENCE_END.split(text) + ["<unk>"]:
                    if "<unk>" not in sentence:
                        run.append(sentence)
                    elif run:
                        current.append(run)
                        run = []
        if current:
            documents.append(current)
    return documents


def _wikitext(path: str) -> bool:
    """WikiText marks documents with ``= Title =`` lines; its blank lines are not document breaks."""
    with open(path, encoding="utf-8") as f:
        head = f.read(4096)
    return re.search(r"^ = [^=].* = $", head, re.M) is not None


def _cut(sentence: str, start_words: int) -> tuple[str, str] | None:
    words = sentence.split()
    if len(words) < start_words + 4:
        return None
    return " ".join(words[:start_words]), " ".join(words[start_words:])


def build(documents: list[list[list[str]]], seed: int = 0, start_words: int = 3, candidates: int = 12,
          fractions: tuple[float, float] = (0.7, 0.15)) -> dict[str, list[dict]]:
    """{"train", "val", "test"}: SWAG rows (the columns of :data:`COLUMNS`; test rows unlabelled ""
    but built the same way). ``fractions``: the train and val shares of the documents."""
    rng = random.Random(seed)
    order = list(range(len(documents)))
    rng.shuffle(order)
    n_train = int(len(order) * fractions[0])
    n_val = int(len(order) * fractions[1])
    parts = {"train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}
    out = {}
    for split, docs in parts.items():
        # (document, sentence, next sentence's start, its ending) for every usable pair
        pairs, endings = [], []
        for d in docs:
            for paragraph in documents[d]:
                for first, second in zip(paragraph, paragraph[1:]):
                    cut = _cut(second, start_words)
                    if cut and len(first.split()) >= 4:
                        pairs.append((d, first, *cut))
                for s in paragraph:
                    cut = _cut(s, start_words)
                    if cut:
                        endings.append((d, cut[1]))
        if len({d for d, _ in endings}) < 2:
            raise OpenBertError(f"too little text for a {split} split: give more documents (--input_file)")
        rows = []
        for i, (doc, sent1, sent2, gold) in enumerate(pairs):
            pool: list[str] = []
            while len(pool) < candidates:
                d, ending = endings[rng.randrange(len(endings))]
                if d != doc and ending != gold and ending not in pool:
                    pool.append(ending)
            n = len(gold.split())
            pool.sort(key=lambda e: abs(len(e.split()) - n))
            choices = pool[:3]
            label = rng.randrange(4)
            choices.insert(label, gold)
            rows.append({"video-id": f"doc{doc}", "fold-ind": str(i), "startphrase": f"{sent1} {sent2}",
                         "sent1": sent1, "sent2": sent2, "gold-source": "gold",
                         **{f"ending{k}": c for k, c in enumerate(choices)}, "label": str(label)})
        rng.shuffle(rows)  # questions of one document are not neighbours
        out[split] = rows
    return out


def write_csv(path, rows: list[dict], with_labels: bool = True) -> None:
    """SWAG's CSV layout (a leading index column, as SWAG's files have); no label column without labels."""
    columns = COLUMNS if with_labels else COLUMNS[:-1]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([""] + columns)
    for i, row in enumerate(rows):
        writer.writerow([str(i)] + [row[c] for c in columns])
    atomic_write_text(path, buf.getvalue())


def write_swag(splits: dict[str, list[dict]], output_dir, test_labels: bool = False) -> dict[str, int]:
    """train.csv, val.csv and test.csv (unlabelled unless ``test_labels``) in ``output_dir``."""
    os.makedirs(output_dir, exist_ok=True)
    for split, rows in splits.items():
        write_csv(os.path.join(output_dir, f"{split}.csv"), rows, with_labels=split != "test" or test_labels)
    return {split: len(rows) for split, rows in splits.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input_file", required=True, help="comma-separated text files or globs")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test_labels", action="store_true", help="keep the label column in test.csv")
    a = p.parse_args(argv)
    try:
        counts = write_swag(build(read_documents(expand_input_files(a.input_file)), a.seed), a.output_dir,
                            a.test_labels)
    except OpenBertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(", ".join(f"{split}: {n} questions" for split, n in counts.items()), f"in {a.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Build a SQuAD-format file from CoNLL-2003 (real news text, real named entities).

No copy of SQuAD is shipped; this gives a real extractive QA task to train and test on. Each
paragraph is a run of consecutive sentences of one CoNLL document (words joined by spaces). Each
question is an entity question about one of its sentences: the words around one named entity
(up to ``context_words`` each side) with the entity replaced by a question word chosen from its
type (PER "who", LOC "where", ORG "which organization", MISC "what"), ending in "?". The answer is
the entity, a real span of the paragraph, with its exact ``answer_start``. For v2.0 a fraction of
paragraphs also get impossible questions: a question taken from another document.

    python -m openbert.tasks.squad.synth --conll eng.testa --output dev.json [--version_2]

``build(path, ...) -> dict`` returns the SQuAD JSON object.
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from ...errors import OpenBertError
from ...io.fileio import atomic_write_text

QUESTION_WORDS = {"PER": "who", "LOC": "where", "ORG": "which organization", "MISC": "what"}


def read_conll_documents(path: str | Path) -> list[list[list[tuple[str, str]]]]:
    """CoNLL-2003 file -> documents -> sentences -> (word, NER tag)."""
    path = Path(path)
    if not path.is_file():
        raise OpenBertError(f"{path}: CoNLL-2003 file not found")
    documents: list[list[list[tuple[str, str]]]] = []
    sentence: list[tuple[str, str]] = []

    def end_sentence():
        nonlocal sentence
        if sentence:
            if not documents:
                documents.append([])
            documents[-1].append(sentence)
            sentence = []

    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            end_sentence()
        elif parts[0] == "-DOCSTART-":
            end_sentence()
            documents.append([])
        elif len(parts) < 2:
            raise OpenBertError(f"{path}:{line_no}: expected 'word ... NER-tag' columns, got {line!r}")
        else:
            sentence.append((parts[0], parts[-1]))
    end_sentence()
    return [d for d in documents if d]


def entity_spans(sentence: list[tuple[str, str]]) -> list[tuple[int, int, str]]:
    """IOB1/IOB2 tags -> [(first word, last word, type)]; B- starts a new entity."""
    spans: list[tuple[int, int, str]] = []
    for i, (_, tag) in enumerate(sentence):
        if tag == "O":
            continue
        prefix, _, etype = tag.partition("-")
        if spans and spans[-1][1] == i - 1 and spans[-1][2] == etype and prefix != "B":
            spans[-1] = (spans[-1][0], i, etype)
        else:
            spans.append((i, i, etype))
    return spans


def _question(words: list[str], start: int, end: int, etype: str, context_words: int) -> str:
    left = words[max(0, start - context_words):start]
    right = [w for w in words[end + 1:end + 1 + context_words] if w not in {".", "?", "!"}]
    return " ".join(left + [QUESTION_WORDS.get(etype, "what")] + right) + " ?"


def build(conll_path: str | Path, max_paragraphs: int | None = None, sentences_per_paragraph: int = 6,
          questions_per_paragraph: int = 3, context_words: int = 6, version_2: bool = False,
          impossible_fraction: float = 0.3, seed: int = 12345) -> dict:
    """CoNLL-2003 file -> SQuAD JSON object (v1.1, or v2.0 with impossible questions)."""
    rng = random.Random(seed)
    documents = read_conll_documents(conll_path)
    articles = []
    all_questions: list[tuple[int, str]] = []  # (document index, question) for impossible ones
    num_paragraphs = 0
    for doc_index, document in enumerate(documents):
        paragraphs = []
        for p_start in range(0, len(document), sentences_per_paragraph):
            sentences = document[p_start:p_start + sentences_per_paragraph]
            context_parts, candidates, offset = [], [], 0
            for sentence in sentences:
                words = [w for w, _ in sentence]
                starts = []
                for w in words:
                    starts.append(offset)
                    offset += len(w) + 1
                context_parts.append(" ".join(words))
                for s, e, etype in entity_spans(sentence):
                    answer = " ".join(words[s:e + 1])
                    candidates.append((_question(words, s, e, etype, context_words), answer, starts[s]))
            if not candidates:
                continue
            context = " ".join(context_parts)
            picked = rng.sample(candidates, min(questions_per_paragraph, len(candidates)))
            qas = []
            for q_index, (question, answer, answer_start) in enumerate(picked):
                assert context[answer_start:answer_start + len(answer)] == answer
                qa = {"id": f"conll-{doc_index}-{p_start}-{q_index}", "question": question,
                      "answers": [{"text": answer, "answer_start": answer_start}]}
                if version_2:
                    qa["is_impossible"] = False
                qas.append(qa)
                all_questions.append((doc_index, question))
            paragraphs.append({"context": context, "qas": qas})
            num_paragraphs += 1
            if max_paragraphs is not None and num_paragraphs >= max_paragraphs:
                break
        if paragraphs:
            articles.append({"title": f"conll2003-doc-{doc_index}", "paragraphs": paragraphs})
        if max_paragraphs is not None and num_paragraphs >= max_paragraphs:
            break
    if version_2:
        _add_impossible(articles, all_questions, impossible_fraction, rng)
    return {"version": "v2.0" if version_2 else "1.1", "data": articles}


def _add_impossible(articles: list, all_questions: list, fraction: float, rng: random.Random) -> None:
    """Give a fraction of paragraphs one question from another document, with no answer."""
    for article in articles:
        doc_index = int(article["title"].rsplit("-", 1)[1])
        others = [q for d, q in all_questions if d != doc_index]
        for p_index, paragraph in enumerate(article["paragraphs"]):
            if others and rng.random() < fraction:
                paragraph["qas"].append({"id": f"conll-{doc_index}-imp{p_index}", "question": rng.choice(others),
                                         "answers": [], "is_impossible": True})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m openbert.tasks.squad.synth", description=__doc__.splitlines()[0])
    p.add_argument("--conll", required=True, help="CoNLL-2003 file, e.g. eng.train or eng.testa")
    p.add_argument("--output", required=True, help="SQuAD JSON file to write")
    p.add_argument("--max_paragraphs", type=int, default=None)
    p.add_argument("--sentences_per_paragraph", type=int, default=6)
    p.add_argument("--questions_per_paragraph", type=int, default=3)
    p.add_argument("--version_2", action="store_true", help="SQuAD v2.0 with impossible questions")
    p.add_argument("--impossible_fraction", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=12345)
    args = p.parse_args(argv)
    data = build(args.conll, args.max_paragraphs, args.sentences_per_paragraph, args.questions_per_paragraph,
                 version_2=args.version_2, impossible_fraction=args.impossible_fraction, seed=args.seed)
    atomic_write_text(args.output, json.dumps(data, indent=1) + "\n")
    n = sum(len(p["qas"]) for a in data["data"] for p in a["paragraphs"])
    print(f"wrote {args.output}: {n} questions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The generator as a reader for the refusal gate: does a passage make the question likely?

Query likelihood (the passage ranks by how probable it makes the question, as in Sachan et al.,
"Improving passage retrieval with zero-shot question generation", 2022) read as an answerability
signal: a passage that answers a question should explain its words, above all the rare ones an
unanswerable question adds ("the *annual* pass", "the *Elmfield* branch"). For each question of a
dump (bench/retrieval_study.py), the shipped generator scores the question's tokens without a
passage and after each of the engine's top 3 passages; `report` turns the log-probabilities into
features, prints how well each separates answerable from unanswerable questions (AUC, per corpus
and half) beside the gate's own features, and the gate's leave-one-corpus-out figures with each
added (bench/gate_study.py).

    python -m bench.query_likelihood score --corpora facts,fetchmail
    python -m bench.query_likelihood report --corpora facts,fetchmail

`score` appends to STUDY/<corpus>.lm.jsonl and skips questions already scored, so an interrupted
run goes on where it stopped. It costs one forward pass of up to ~450 tokens per passage: about
a second each on two CPU cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from bench.gate_study import Rows
from bench.retrieval_study import DATA, FACTS, STUDY, _args, _questions, load, log

TOP = 3  # passages read per question
PASSAGE_TOKENS = 420  # a passage's last tokens kept before the question
SURPRISING = -5.0  # a question token this unlikely without a passage is one a passage must explain
EXPLAINED = 2.0  # ... and a passage explains it when it raises its log-probability this much

LM_FEATURES = ("lm_pmi", "lm_cond", "lm_explained", "lm_worst", "lm_worst_gain")
GATE_BASE = ("top_dense", "coverage", "known", "sentence", "asks_kind")


def lm_features(u: Sequence[float], conds: Sequence[Sequence[float]]) -> dict[str, float]:
    """Features from the question's token log-probabilities without a passage (`u`) and after
    each passage (`conds`): the best passage's mean gain over no passage (pointwise mutual
    information per token) and mean log-probability; the share of the question's surprising
    tokens that some passage explains; the surprising tokens' worst log-probability and worst
    gain after their best passage."""
    n = len(u)
    cs = list(conds) or [list(u)]
    best = [max(c[i] for c in cs) for i in range(n)]
    surprising = [i for i in range(1, n) if u[i] < SURPRISING]  # the first token has no context
    return {
        "lm_pmi": max(sum(c[i] - u[i] for i in range(n)) / n for c in cs) if n else 0.0,
        "lm_cond": max(sum(c) / n for c in cs) if n else 0.0,
        "lm_explained": (
            sum(1 for i in surprising if best[i] - u[i] > EXPLAINED) / len(surprising)
            if surprising
            else 1.0
        ),
        "lm_worst": min((best[i] for i in surprising), default=0.0),
        "lm_worst_gain": min((best[i] - u[i] for i in surprising), default=EXPLAINED),
    }


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float | None:
    """The chance that a positive scores above a negative (ties count half); None without both."""
    if not positives or not negatives:
        return None
    wins = sum((p > q) + 0.5 * (p == q) for p in positives for q in negatives)
    return wins / (len(positives) * len(negatives))


def scorer(generator: Any) -> Callable[[str, Sequence[Any]], dict[str, Any]]:
    """`run(question, hits)`: the question's token log-probabilities under the generator's
    model, without a passage and after each of the top passages (heading path, then text)."""
    import torch

    tok, model = generator.hf_tokenizer, generator.hf_model
    model.eval()

    def logprobs(prefix: str, q_ids: list[int]) -> list[float]:
        p_ids = tok(prefix, add_special_tokens=False)["input_ids"][-PASSAGE_TOKENS:]
        with torch.no_grad():
            logits = model(torch.tensor([p_ids + q_ids])).logits[0]
        lp = torch.log_softmax(logits[len(p_ids) - 1 : -1].float(), -1)
        picked = lp.gather(1, torch.tensor(q_ids)[:, None])[:, 0].tolist()
        return [round(x, 4) for x in picked]

    def run(question: str, hits: Sequence[Any]) -> dict[str, Any]:
        q_ids = tok(" " + question.strip(), add_special_tokens=False)["input_ids"]
        conds = []
        for h in hits[:TOP]:
            head = " > ".join(h.chunk.heading_path)
            text = f"{head}\n{h.chunk.text}" if head else h.chunk.text
            conds.append(logprobs(f"{text}\n\nQuestion:", q_ids))
        return {"u": logprobs("Question:", q_ids), "c": conds}

    return run


def _out(corpus: str) -> Path:
    return STUDY / f"{corpus}.lm.jsonl"


def _done(corpus: str) -> set[str]:
    path = _out(corpus)
    if not path.is_file():
        return set()
    return {json.loads(line)["id"] for line in path.open(encoding="utf-8") if line.strip()}


def _score_all(
    engine: Any, corpus: str, questions: Iterable[tuple[str, str]], done: set[str]
) -> None:
    engine.generator.load()
    run = scorer(engine.generator)
    t0 = time.perf_counter()
    with _out(corpus).open("a", encoding="utf-8") as fh:
        for i, (qid, text) in enumerate(questions):
            if qid in done:
                continue
            hits = engine.retrieve(text).hits
            fh.write(json.dumps({"id": qid, **run(text, hits)}) + "\n")
            fh.flush()
            if i % 25 == 0:
                log(f"{corpus}: {i} questions, {time.perf_counter() - t0:.0f} s")


def score(corpus: str, settings: Any) -> None:
    """Score every question of `corpus` not scored yet (its index is the dump's)."""
    from webapp.eval_cli import _close

    done = _done(corpus)
    if corpus == "facts":
        from rag_core.evaluation.facts import load_facts
        from webapp.eval_facts import open_facts_index

        for split in ("dev", "test"):
            facts = load_facts(FACTS / split)
            engine = open_facts_index(_args(), settings, facts)
            try:
                _score_all(engine, corpus, ((q.id, q.question) for q in facts.questions), done)
            finally:
                _close(engine)
        return
    from rag_core.evaluation import load_beir
    from webapp.eval_cli import open_index

    root = DATA / corpus
    engine, _, _ = open_index(_args(), settings, load_beir(root, "tune"))
    try:
        _score_all(engine, corpus, ((q.qid, q.text) for q in _questions(root)), done)
    finally:
        _close(engine)


def rows_of(corpora: Sequence[str]) -> Rows:
    """Per corpus and half, every question's gate features with the LM features added, and
    whether it is answerable (questions not scored yet are left out)."""
    from bench import gate_study

    out: Rows = {}
    for corpus in corpora:
        lm: dict[str, dict[str, float]] = {}
        with _out(corpus).open(encoding="utf-8") as fh:
            for line in fh:
                r = json.loads(line)
                lm[r["id"]] = lm_features(r["u"], r["c"])
        scored = [q for q in load(corpus) if q.qid in lm]  # ids repeat across corpora
        out |= gate_study.rows_of({corpus: scored}, lambda q, lm=lm: lm[q.qid])
    return out


def report(corpora: Sequence[str]) -> dict[str, Any]:
    """AUC of each feature per corpus and half, and the gate (shipped form, refitted) with
    each LM feature added, leave-one-corpus-out with the answer-level override."""
    from bench.gate_study import RULES, leave_one_out

    rows = rows_of(corpora)
    separation: dict[str, Any] = {}
    for corpus, halves in rows.items():
        for half, rs in halves.items():
            separation[f"{corpus} {half}"] = {
                "n": len(rs),
                **{
                    name: None if (a := auc(*_split(rs, name))) is None else round(a, 3)
                    for name in (*GATE_BASE[:4], *LM_FEATURES)
                },
            }
    gates: dict[str, Any] = {}
    for extra in ((), *((name,) for name in LM_FEATURES)):
        names = (*GATE_BASE, *extra)
        for rule, cap in RULES.items():
            got = leave_one_out(rows, corpora, names, cap)["gate + override"]
            gates[f"{'+ '.join(('gate', *extra))}; {rule}"] = got
    return {"auc": separation, "leave_one_out": gates}


def _split(rows: Sequence[tuple[dict[str, float], bool]], name: str) -> tuple[list[float], ...]:
    return [f[name] for f, ok in rows if ok], [f[name] for f, ok in rows if not ok]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.query_likelihood", description=__doc__)
    parser.add_argument("cmd", choices=("score", "report"))
    parser.add_argument("--corpora", default="facts,fetchmail")
    args = parser.parse_args(argv)
    corpora = [c.strip() for c in args.corpora.split(",") if c.strip()]
    if args.cmd == "score":
        from rag_core.config import Settings

        settings = Settings()
        for corpus in corpora:
            score(corpus, settings)
        return 0
    json.dump(report(corpora), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

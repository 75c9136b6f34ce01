"""Evaluation: metrics on hand-computed examples, BEIR loading errors, a tiny dataset with fakes."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rag_core.config import Settings
from rag_core.engine import Engine
from rag_core.errors import UserError
from rag_core.evaldata import default_unanswerable
from rag_core.evaluation import (
    AnswerRecord,
    CorpusMap,
    best_threshold,
    document_names,
    evaluate_answers,
    evaluate_retrieval,
    index_corpus,
    load_beir,
    mrr_at_k,
    ndcg_at_k,
    percentile,
    question_gate_features,
    read_questions,
    recall_at_k,
    refusal_stats,
    shown_sentences,
    spread,
    summarize_answers,
)
from rag_core.evaluation.corpus import run_grid
from rag_core.grounding import UNSUPPORTED_MARK, GateModel
from rag_core.testing import InMemoryStore, fake_engine
from rag_core.types import Done, Retrieved, SentenceCheck, Timings
from webapp import eval_cli, eval_tables
from webapp.cli import main

# -- metrics ---------------------------------------------------------------------------------


def test_ndcg_graded_hand_computed() -> None:
    qrels = {"a": 2, "b": 1, "z": 0}
    # ranking: x, a, b -> DCG = 2/log2(3) + 1/log2(4); ideal: a, b -> 2/log2(2) + 1/log2(3)
    dcg = 2 / math.log2(3) + 1 / 2
    idcg = 2 + 1 / math.log2(3)
    assert ndcg_at_k(["x", "a", "b"], qrels, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(["a", "b"], qrels, 10) == pytest.approx(1.0)
    assert ndcg_at_k(["x", "a", "b"], qrels, 1) == 0.0
    assert ndcg_at_k(["z"], qrels, 10) == 0.0  # judged non-relevant earns nothing
    assert ndcg_at_k(["a"], {"a": 0}, 10) == 0.0  # nothing relevant: defined as 0


def test_ndcg_cuts_ideal_at_k() -> None:
    qrels = {"a": 1, "b": 1, "c": 1}
    # only 1 slot: ideal DCG@1 = 1, ranking puts a relevant doc first -> 1.0
    assert ndcg_at_k(["b", "x"], qrels, 1) == pytest.approx(1.0)
    assert ndcg_at_k(["x", "b"], qrels, 2) == pytest.approx(
        (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    )


def test_recall_and_mrr_hand_computed() -> None:
    qrels = {"a": 1, "b": 3, "c": 1, "n": 0}
    ranking = ["x", "b", "y", "a", "n"]
    assert recall_at_k(ranking, qrels, 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranking, qrels, 10) == pytest.approx(2 / 3)
    assert mrr_at_k(ranking, qrels, 10) == pytest.approx(0.5)
    assert mrr_at_k(ranking, qrels, 1) == 0.0
    assert mrr_at_k(["n", "x"], qrels, 10) == 0.0


def test_percentile_and_spread() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == pytest.approx(3.85)  # numpy's linear method
    assert spread(list(range(10)), 3) == [0, 3, 6]
    assert spread([1, 2], 5) == [1, 2] and spread([1, 2], None) == [1, 2]


def test_threshold_choice_maximises_refusal_f1() -> None:
    answerable = [0.8, 0.7, 0.6, 0.45]
    unanswerable = [0.2, 0.3, 0.5]
    best = best_threshold(answerable, unanswerable)
    # refusing below 0.4 catches 2 of 3 unanswerable with no false refusal: P=1, R=2/3, F1=0.8;
    # below 0.55 catches all 3 but refuses 0.45 too: P=0.75, R=1, F1=0.857 -> the better one
    assert 0.5 < best.threshold <= 0.55
    assert best.precision == pytest.approx(0.75) and best.recall == pytest.approx(1.0)
    assert (best.refused_answerable, best.refused_unanswerable) == (1, 3)
    at = refusal_stats(answerable, unanswerable, 0.4)
    assert at.precision == 1.0 and at.recall == pytest.approx(2 / 3)
    assert at.balanced_accuracy == pytest.approx((2 / 3 + 1) / 2)
    with pytest.raises(UserError):
        best_threshold(answerable, [])


def test_document_names_are_safe_and_unique() -> None:
    names = document_names(["faq/general#1", "library/general#1", "plain", "a\\b"])
    assert names["faq/general#1"] == "faq__general#1.md"
    assert names["plain"] == "plain.md" and names["a\\b"] == "a__b.md"
    assert len(set(names.values())) == 4


# -- BEIR loading ----------------------------------------------------------------------------


def write_beir(root: Path, docs: dict[str, tuple[str, str]], queries: dict[str, str],
               qrels: list[tuple[str, str, int]], split: str = "dev") -> Path:  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    (root / "qrels").mkdir(exist_ok=True)
    with (root / "corpus.jsonl").open("w") as fh:
        for doc_id, (title, text) in docs.items():
            fh.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with (root / "queries.jsonl").open("w") as fh:
        for qid, text in queries.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, d, s in qrels]
    (root / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return root


DOCS = {
    "howto/zebra#1": (
        "Zebra stripes",
        "Zebras have black and white stripes that confuse biting flies.",
    ),
    "howto/kettle#1": ("Kettle descaling", "Descale a kettle with vinegar and water every month."),
    "faq/bicycle#2": (
        "Bicycle tyres",
        "Inflate bicycle tyres to the pressure printed on the tyre wall.",
    ),
    "faq/garden#3": (
        "Tomato watering",
        "Water tomato plants deeply twice a week in dry summer weather.",
    ),
    "library/oven#4": ("Oven cleaning", "Clean the oven with baking soda paste left overnight."),
    "library/oven#5": ("Oven cleaning", "Clean the oven with baking soda paste left overnight."),
}
QUERIES = {
    "q1": "why do zebras have stripes against flies",
    "q2": "how to descale a kettle with vinegar",
    "q3": "what pressure for bicycle tyres",
    "q4": "how often to water tomato plants",
    "q5": "how to clean an oven with baking soda",
    "q-unjudged": "nothing judged",
}
QRELS = [
    ("q1", "howto/zebra#1", 1),
    ("q2", "howto/kettle#1", 1),
    ("q3", "faq/bicycle#2", 2),
    ("q4", "faq/garden#3", 1),
    ("q5", "library/oven#5", 1),  # a copy of oven#4: ties with it
    ("q-unjudged", "howto/zebra#1", 0),
]


def test_load_beir_reads_split_and_keeps_judged_queries(tmp_path: Path) -> None:
    ds = load_beir(write_beir(tmp_path / "set", DOCS, QUERIES, QRELS))
    assert set(ds.corpus) == set(DOCS) and ds.corpus["howto/zebra#1"].title == "Zebra stripes"
    assert ds.corpus["howto/zebra#1"].markdown.startswith("# Zebra stripes\n\nZebras")
    assert set(ds.queries) == {"q1", "q2", "q3", "q4", "q5"}  # no relevant document: left out
    assert ds.qrels["q3"] == {"faq/bicycle#2": 2}


def test_load_beir_errors_name_the_file(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "set", DOCS, QUERIES, QRELS)
    with pytest.raises(UserError, match=r"qrels/test\.tsv is missing"):
        load_beir(root, "test")
    (root / "qrels" / "bad.tsv").write_text("q1\thowto/zebra#1\t1\n")
    with pytest.raises(UserError, match=r"bad\.tsv must start with the header"):
        load_beir(root, "bad")
    (root / "qrels" / "short.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tx\n")
    with pytest.raises(UserError, match=r"short\.tsv line 2"):
        load_beir(root, "short")
    (root / "qrels" / "nan.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tx\thigh\n")
    with pytest.raises(UserError, match=r"'high' is not a number"):
        load_beir(root, "nan")
    (root / "queries.jsonl").write_text('{"_id": "q1", "text": "x"}\n{broken\n')
    with pytest.raises(UserError, match=r"queries\.jsonl line 2 is not JSON"):
        load_beir(root)
    (root / "corpus.jsonl").write_text('{"title": "no id"}\n')
    with pytest.raises(UserError, match=r"corpus\.jsonl line 1 lacks"):
        load_beir(root)
    (root / "corpus.jsonl").unlink()
    with pytest.raises(UserError, match=r"corpus\.jsonl is missing"):
        load_beir(root)
    with pytest.raises(UserError, match="is not a folder"):
        load_beir(tmp_path / "nowhere")


def test_packaged_unanswerable_questions() -> None:
    questions = read_questions(default_unanswerable())
    assert len(questions) >= 60 and len(set(questions)) == len(questions)
    assert all(q.endswith("?") for q in questions)


# -- a tiny dataset through an engine with fakes ---------------------------------------------


def make_engine(
    tmp_path: Path, reply: str = "", store: InMemoryStore | None = None, **overrides: object
) -> Engine:
    settings = Settings(home=tmp_path, **overrides)  # type: ignore[arg-type]
    return fake_engine(settings, reply=reply, store=store)


def test_index_and_evaluate_retrieval_with_fakes(tmp_path: Path) -> None:
    ds = load_beir(write_beir(tmp_path / "set", DOCS, QUERIES, QRELS))
    engine = make_engine(tmp_path / "home")
    seen: list[tuple[int, int]] = []
    cmap = index_corpus(engine, ds.corpus, lambda done, total: seen.append((done, total)), group=4)
    assert seen == [(4, 6), (6, 6)]
    assert cmap.errors == {} and cmap.chunks >= 5
    # identical content is indexed once; the copy shares the original's score
    assert cmap.duplicates == {"library/oven#4": ("library/oven#5",)}
    names = {d.name for d in engine.documents()}
    assert "howto__zebra#1.md" in names and len(names) == 5
    chunk = engine.chunks_of("howto__zebra#1.md")[0]
    assert chunk.heading_path == ("Zebra stripes",)  # the title became the heading path
    scores = evaluate_retrieval(
        engine, ds.queries, ds.qrels, ["dense", "bm25", "hybrid"], documents=cmap
    )
    assert [s.mode for s in scores] == ["dense", "bm25", "hybrid"]
    for s in scores:
        assert s.queries == 5
        assert s.ndcg_at_10 > 0.9 and s.recall_at_10 == 1.0 and s.recall_at_100 == 1.0
        assert s.mrr_at_10 >= 0.9 and 0 <= s.latency_p50_ms <= s.latency_p95_ms
    # a CorpusMap from JSON behaves the same (the cached index keeps it in its marker file)
    assert CorpusMap.from_json(json.loads(json.dumps(cmap.to_json()))) == cmap


def test_ndcg_is_measured_on_the_pools_a_chat_question_gets(tmp_path: Path) -> None:
    """nDCG@10 ranks what an answer ranks: each retriever gives RAGCHAT_CANDIDATES candidates
    (the fusion's z-scores depend on the pool); only Recall@100 searches deeper."""
    ds = load_beir(write_beir(tmp_path / "set", DOCS, QUERIES, QRELS))
    engine = make_engine(tmp_path / "home", candidates=7)
    cmap = index_corpus(engine, ds.corpus)
    asked: list[tuple[int, int]] = []
    search = engine.retriever.search

    def spy(query: str, **kw: Any) -> Any:
        asked.append((kw["k"], kw["candidates"]))
        return search(query, **kw)

    engine.retriever.search = spy  # type: ignore[method-assign]
    [scores] = evaluate_retrieval(engine, ds.queries, ds.qrels, ["hybrid"], documents=cmap)
    assert scores.ndcg_at_10 > 0.9
    n = len(ds.queries)
    assert asked.count((7, 7)) == n  # the ranking nDCG@10 scores: the chat's pools
    assert asked.count((300, 300)) == n  # Recall@100's deeper search
    assert asked.count((engine.settings.top_k, 7)) == n  # Engine.retrieve, timed for latency


def test_answers_and_gate_with_fakes(tmp_path: Path) -> None:
    ds = load_beir(write_beir(tmp_path / "set", DOCS, QUERIES, QRELS))
    reply = "Descale a kettle with vinegar and water every month. It was invented in 1890."
    engine = make_engine(tmp_path / "home", reply=reply, refusal_threshold=0.3)
    cmap = index_corpus(engine, ds.corpus)
    questions = [
        ("how to descale a kettle with vinegar", frozenset({"howto/kettle#1"})),
        ("quantum chromodynamics lattice gauge", None),
    ]
    records = evaluate_answers(engine, questions, ["mark", "off"], documents=cmap)
    assert len(records) == 4
    by = {(r.answerable, r.grounding): r for r in records}
    kettle = by[(True, "mark")]
    assert not kettle.refused and kettle.mode == "generated"
    assert kettle.citations == 1 and kettle.correct_citations == 1
    assert (kettle.shown_sentences, kettle.shown_supported) == (2, 1)
    assert kettle.unflagged_unsupported == 0 and UNSUPPORTED_MARK in kettle.answer
    assert by[(True, "off")].unflagged_unsupported == 1  # the invented date is shown unmarked
    assert by[(False, "mark")].refused and by[(False, "off")].refused
    mark = summarize_answers(records, "mark")
    assert mark.citation_precision == 1.0 and mark.answers_with_correct_citation == 1.0
    assert mark.supported_sentence_rate == 0.5 and mark.unflagged_unsupported_rate == 0.0
    assert mark.refusal_precision == 1.0 and mark.refusal_recall == 1.0
    assert mark.refusal_rate_answerable == 0.0 and mark.extractive_share == 0.0
    assert mark.first_token_p50_ms is not None
    off = summarize_answers(records, "off")
    assert off.unflagged_unsupported_rate == 1.0
    # the gate's evidence is the engine's own
    model = GateModel.from_weights(engine.settings.refusal_gate)
    features = question_gate_features(engine, "how to descale a kettle with vinegar")
    retrieved = next(iter(engine.answer("how to descale a kettle with vinegar")))
    assert isinstance(retrieved, Retrieved) and features == retrieved.features
    assert features is not None
    assert model.score(features) == pytest.approx(retrieved.gate_score, abs=1e-4)
    far = question_gate_features(engine, "quantum chromodynamics lattice gauge")
    assert far is None or model.score(far) < 0.3


def test_summary_handles_empty_denominators() -> None:
    rec = AnswerRecord("q", False, "mark", True, "refused", "complete", 0.1, 0, 0, 0, 0, 0, 1.0, "")
    s = summarize_answers([rec], "mark")
    assert s.citation_precision is None and s.answers_with_correct_citation is None
    assert s.refusal_precision == 1.0 and s.refusal_recall == 1.0
    assert s.supported_sentence_rate is None and s.first_token_p50_ms is None


# -- the CLI, with the engine built from fakes -----------------------------------------------


@pytest.fixture
def fake_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The eval CLI over a tiny dataset, its engine wired with fakes in the index folder."""
    monkeypatch.setenv("RAGCHAT_HOME", str(tmp_path / "user-home"))
    monkeypatch.setenv("RAGCHAT_REFUSAL_THRESHOLD", "0.3")
    reply = "Descale a kettle with vinegar and water every month."
    stores: dict[Path, InMemoryStore] = {}

    def build(settings: Settings) -> Engine:
        # the fake vector store lives in memory: keep it while the folder's index is complete
        if not (settings.home / eval_cli.MARKER).exists():
            stores[settings.home] = InMemoryStore()
        store = stores[settings.home]
        return make_engine(settings.home, reply=reply, store=store, refusal_threshold=0.3)

    monkeypatch.setattr(eval_cli, "_build_engine", build)
    write_beir(tmp_path / "set", DOCS, QUERIES, QRELS)
    return tmp_path


def test_cli_retrieval_json_and_index_reuse(
    fake_cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "eval",
        "retrieval",
        "--beir",
        str(fake_cli / "set"),
        "--index-dir",
        str(fake_cli / "idx"),
    ]
    assert main([*args, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert set(first["modes"]) == {"hybrid", "dense", "bm25"} and first["queries"] == 5
    assert first["index"]["reused"] is False and (fake_cli / "idx" / eval_cli.MARKER).is_file()
    assert not (fake_cli / "user-home").exists()  # the user's data is never touched
    assert main([*args, "--json", "--mode", "dense", "--limit", "2"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["index"]["reused"] is True and list(second["modes"]) == ["dense"]
    assert second["queries"] == 2 and second["modes"]["dense"]["recall_at_10"] == 1.0
    assert main([*args, "--reindex"]) == 0
    table = capsys.readouterr().out
    assert "nDCG@10" in table and "hybrid" in table


def test_cli_retrieval_over_several_datasets(
    fake_cli: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        eval_cli, "default_index_dir", lambda d, key: fake_cli / f"idx-{d.path.name}"
    )
    half = dict(list(QUERIES.items())[:3])
    write_beir(fake_cli / "halves", DOCS, half, [q for q in QRELS if q[0] in half], split="test")
    both = f"{fake_cli / 'set'},{fake_cli / 'halves'}"
    assert main(["eval", "retrieval", "--beir", both, "--json", "--per-query"]) == 0
    out = json.loads(capsys.readouterr().out)
    first, second = out["datasets"]
    assert (first["split"], second["split"]) == ("dev", "test")  # auto: test where there is one
    assert second["queries"] == 3 and len(second["modes"]["dense"]["per_query"]) == 3
    for mode, macro in out["macro"].items():
        mean = (first["modes"][mode]["ndcg_at_10"] + second["modes"][mode]["ndcg_at_10"]) / 2
        assert macro["ndcg_at_10"] == pytest.approx(mean, abs=1e-3)
    assert main(["eval", "retrieval", "--beir", both, "--mode", "dense"]) == 0
    assert "macro average over 2 datasets" in capsys.readouterr().out
    assert main(["eval", "calibrate", "--beir", both]) == 1
    assert "takes one --beir dataset" in capsys.readouterr().err


def test_cli_refuses_foreign_index_dir(fake_cli: Path, capsys: pytest.CaptureFixture[str]) -> None:
    foreign = fake_cli / "mydata"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    rc = main(["eval", "retrieval", "--beir", str(fake_cli / "set"), "--index-dir", str(foreign)])
    assert rc == 1 and "refusing" in capsys.readouterr().err
    assert (foreign / "precious.txt").read_text() == "keep me"


def test_cli_answers_and_calibrate(fake_cli: Path, capsys: pytest.CaptureFixture[str]) -> None:
    unans = fake_cli / "unanswerable.txt"
    unans.write_text("# comment\nquantum chromodynamics lattice gauge\nsonnet meter iambic\n")
    common = ["--beir", str(fake_cli / "set"), "--index-dir", str(fake_cli / "idx"),
              "--unanswerable", str(unans)]  # fmt: skip
    assert main(["eval", "answers", *common, "--grounding", "both", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["grounding"]) == {"mark", "off"} and out["unanswerable"] == 2
    assert len(out["answers"]) == 2 * (5 + 2)
    assert out["grounding"]["mark"]["refusal_recall"] == 1.0
    assert main(["eval", "answers", *common, "--limit", "1"]) == 0
    assert "citation precision" in capsys.readouterr().out
    assert main(["eval", "calibrate", *common, "--folds", "2", "--json"]) == 0
    cal = json.loads(capsys.readouterr().out)
    assert cal["index"]["reused"] is True and cal["best"]["f1"] >= cal["current"]["f1"]
    assert cal["current"]["threshold"] == 0.3 and cal["current"]["recall"] == 1.0
    assert cal["folds"] == 2 and 0.0 <= cal["cross_validated"]["recall"] <= 1.0
    assert set(cal["weights"]) == {"coverage", "known"}
    assert set(cal["answerable_scores"]) == {"p5", "p25", "p50", "p75", "p95"}
    # the unanswerable questions share no term with the corpus: coverage 0
    assert all(f["coverage"] == 0.0 for f in cal["features_of"]["unanswerable"].values())
    assert main(["eval", "calibrate", *common, "--folds", "2"]) == 0
    out = capsys.readouterr().out
    assert "max refusal F1" in out and "2-fold cross-validated" in out
    assert "RAGCHAT_REFUSAL_GATE=" in out
    # too few questions for the folds: a clear error, not a traceback
    assert main(["eval", "calibrate", *common]) == 1
    assert "at least 10" in capsys.readouterr().err


def _done(answer: str, checks: list[SentenceCheck], mode: str = "generated") -> Done:
    return Done(
        question="q", query="q", answer=answer, raw_answer=answer, citations=(), hits=(),
        sentences=tuple(checks), refused=False, mode=mode, status="complete", timings=Timings(),
    )  # fmt: skip


def test_shown_sentences_follow_the_verdicts() -> None:
    same = "You can write functions in C."
    checks = [
        SentenceCheck(0, f"{same} [2]", True, 0.9, 2, "s"),
        SentenceCheck(1, same, False, 0.3, reason="no passage matches", verdict="marked"),
        SentenceCheck(2, "Sure:", False, 0.0, verdict="no-claim"),
        SentenceCheck(3, "It was in 1890.", False, 0.2, reason="not in: 1890", verdict="removed"),
        SentenceCheck(4, "Unchecked.", False, 0.2, verdict="unchecked"),
        SentenceCheck(5, "Replaced.", False, 0.2, verdict="replaced"),
    ]
    shown, unflagged = shown_sentences(_done("", checks))
    assert [c.index for c in shown] == [0, 1, 4] and unflagged == 1
    quoted = [replace(checks[3], verdict="replaced"), SentenceCheck(6, "Quote. [1]", True, 0.8, 1)]
    assert shown_sentences(_done("Quote. [1]", quoted, "extractive")) == ([quoted[1]], 0)


def test_calibrate_gate_cross_validates_on_held_out_folds() -> None:
    from rag_core.evaluation import calibrate_gate
    from rag_core.grounding import GateFeatures

    answerable = [
        GateFeatures(0.45 + 0.01 * (i % 20), 0.85 + 0.01 * (i % 10), 1.0) for i in range(40)
    ]
    unanswerable = [
        GateFeatures(0.35 + 0.01 * (i % 20), 0.2 + 0.02 * (i % 10), 0.5 + 0.1 * (i % 3))
        for i in range(30)
    ]
    unanswerable[0] = GateFeatures(0.6, 0.95, 1.0)  # one that looks answerable: never refused
    cal = calibrate_gate(answerable, unanswerable, folds=5)
    assert cal.folds == 5
    assert cal.fitted.recall == pytest.approx(29 / 30) and cal.fitted.precision == 1.0
    assert cal.cross_validated.recall <= cal.fitted.recall
    assert cal.cross_validated.refused_unanswerable == 29
    with pytest.raises(UserError, match="at least 5"):
        calibrate_gate(answerable[:3], unanswerable, folds=5)


def test_alce_counts_recall_and_needed_citations() -> None:
    """ALCE: a sentence counts when its citations together support it; a citation is not
    needed when it does not support alone and the others support without it."""
    from rag_core.evaluation import alce_counts
    from rag_core.types import Chunk, Done, Hit, SentenceCheck, Timings

    texts = ["The pump runs at 40 rpm.", "The pump is blue.", "Unrelated text."]
    hits = tuple(
        Hit(Chunk(f"c{i}", f"d{i}", f"d{i}.md", "v", 0, t, 0, len(t)), i + 1, 1.0)
        for i, t in enumerate(texts)
    )

    def judge(question: str, sentence: str, passages: Sequence[Hit]) -> bool:
        words = set(sentence.lower().rstrip(".").split()) - {"the", "pump", "is", "at", "runs"}
        held = set(" ".join(p.chunk.text.lower().rstrip(".") for p in passages).split())
        return bool(passages) and words <= held

    sentences = (
        SentenceCheck(0, "The pump runs at 40 rpm. [1][3]", True, 1.0, 1),  # [3] not needed
        SentenceCheck(1, "The pump is blue. [2]", True, 1.0, 2),
        SentenceCheck(2, "The pump is green. [2]", True, 1.0, 2),  # unsupported
    )
    done = Done(
        question="q", query="q", answer="", raw_answer="", citations=(), hits=hits,
        sentences=sentences, refused=False, mode="generated", status="complete",
        timings=Timings(),
    )  # fmt: skip
    assert alce_counts(done, judge) == (2, 3, 3, 4)


def test_run_grid_runs_every_pair_in_order_and_reports_each() -> None:
    seen: list[tuple[int, int]] = []
    out = run_grid("ab", (1, 2, 3), lambda a, b: f"{a}{b}", lambda d, t: seen.append((d, t)))
    assert out == ["a1", "a2", "a3", "b1", "b2", "b3"]
    assert seen == [(1, 6), (2, 6), (3, 6), (4, 6), (5, 6), (6, 6)]


def test_print_figures_gives_a_column_per_scores_object(capsys: pytest.CaptureFixture[str]) -> None:
    a = SimpleNamespace(right=0.5, total_ms=12.3)
    b = SimpleNamespace(right=None, total_ms=7.0)
    rows = [("right", "Right"), ("total_ms", "Total ms")]
    eval_tables.print_figures("strategy", [("a", a), ("b", b)], rows, cell=6)
    assert capsys.readouterr().out.splitlines() == [
        "strategy".ljust(44) + "     a     b",
        "Right".ljust(44) + " 0.500     -",
        "Total ms".ljust(44) + "    12     7",
    ]

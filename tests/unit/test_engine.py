"""Engine flow with fakes for the models (fast): ingest, refusal, streaming, checks, logging."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from rag_core.config import Settings
from rag_core.engine import Engine
from rag_core.errors import InvalidQuestionError
from rag_core.testing import FakeGenerator, fake_engine
from rag_core.types import Done, Logged, Retrieved, SentenceChecked, Token

ACME = (
    "# Billing\n\nAcme Cloud offers monthly and annual plans. Annual plans can be refunded in full "
    "within 30 days of purchase. Monthly plans are not refundable.\n\n# Limits\n\nThe maximum "
    "upload size of Acme Cloud is 2 GB per file.\n"
)


def make_engine(tmp_path: Path, reply: str = "", **overrides: object) -> Engine:
    settings = Settings(home=tmp_path, refusal_threshold=0.2, **overrides)  # type: ignore[arg-type]
    return fake_engine(settings, reply=reply)


def run(engine: Engine, question: str, **kw: object) -> tuple[list[object], Done]:
    events = list(engine.answer(question, (), engine.options(**kw)))  # type: ignore[arg-type]
    done = events[-1]
    assert isinstance(done, Done)
    return events, done


def test_ingest_duplicate_and_new_version(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, chunk_size=120)  # small chunks: the edit touches only one
    first = engine.ingest_bytes(ACME.encode(), "acme.md")
    assert first.status == "added" and first.chunks >= 1
    again = engine.ingest_bytes(ACME.encode(), "copy-of-acme.md")
    assert again.status == "duplicate" and again.document and again.document.name == "acme.md"
    assert len(engine.documents()) == 1
    edited = ACME.replace("2 GB", "5 GB")
    second = engine.ingest_bytes(edited.encode(), "acme.md")
    assert second.status == "replaced" and second.document and second.document.version == 2
    assert second.reused_embeddings >= 1  # the unchanged billing chunk was not embedded again
    docs = engine.documents()
    assert [d.version for d in docs] == [2]
    texts = " ".join(c.text for c in engine.store.chunks_of(docs[0].id))  # type: ignore[attr-defined]
    assert "5 GB" in texts and engine.store.count() == len(engine.chunks_of("acme.md"))


def test_bad_file_leaves_knowledge_base_unchanged(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    engine.ingest_bytes(ACME.encode(), "acme.md")
    before = (engine.store.count(), engine.keyword.count(), len(engine.documents()))
    result = engine.ingest_bytes(b"%PDF-1.7\n garbage", "broken.pdf")
    assert result.status == "error" and result.error and "broken.pdf" in result.error
    assert engine.ingest_bytes(b"", "empty.txt").status == "error"
    assert (engine.store.count(), engine.keyword.count(), len(engine.documents())) == before


def test_deleted_document_is_never_retrieved(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, reply="The maximum upload size is 2 GB per file.")
    engine.ingest_bytes(ACME.encode(), "acme.md")
    _, done = run(engine, "What is the maximum upload size?")
    assert done.hits
    engine.delete_document("acme.md")
    _events, done = run(engine, "What is the maximum upload size?")
    assert done.hits == () and done.refused
    assert engine.store.count() == 0 and engine.keyword.count() == 0


def test_grounded_answer_streams_checks_and_cites(tmp_path: Path) -> None:
    engine = make_engine(
        tmp_path,
        reply="Annual plans can be refunded in full within 30 days of purchase. It was founded in 1990.",
    )
    engine.ingest_bytes(ACME.encode(), "acme.md")
    events, done = run(engine, "How long do I have to get a refund on an annual plan?")
    assert isinstance(events[0], Retrieved) and not events[0].refused
    assert sum(isinstance(e, Token) for e in events) > 3  # streamed in pieces
    checks = [e.check for e in events if isinstance(e, SentenceChecked)]
    assert [c.supported for c in checks] == [True, False]
    assert done.mode == "generated" and done.status == "complete"
    assert done.answer.startswith(
        "Annual plans can be refunded in full within 30 days of purchase. [1]"
    )
    assert "[not in your documents]" in done.answer
    assert [c.n for c in done.citations] == [1]
    assert done.citations[0].chunk.document_name == "acme.md"
    assert done.timings.first_token_ms is not None and done.config["top_k"] == 5


def test_unsupported_generation_falls_back_to_quoting(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, reply="The answer is: 6 months.")
    engine.ingest_bytes(ACME.encode(), "acme.md")
    _, done = run(engine, "How long do I have to get a refund on an annual plan?")
    assert done.mode == "extractive" and "6 months" not in done.answer
    assert "30 days" in done.answer and done.citations


def test_refusal_when_nothing_relevant(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, reply="Paris is the capital.")
    engine.settings.refusal_threshold = 0.5
    engine.ingest_bytes(ACME.encode(), "acme.md")
    _, done = run(engine, "What is the capital of France?")
    assert done.refused and done.mode == "refused" and "don't say" in done.answer
    assert done.hits  # the closest passages stay inspectable
    assert engine.generator.calls == []  # type: ignore[attr-defined]


def test_a_gate_with_a_sentence_weight_scores_the_passage_sentences(tmp_path: Path) -> None:
    """The retrieval-only gate (two weights) leaves the sentence score out; a third weight makes
    Engine.retrieve score the passages' sentences and add the best one's score, weighted; a
    fourth reads whether the question asks for a kind of fact."""
    engine = make_engine(tmp_path, refusal_gate=(0.5, 0.6))
    engine.ingest_bytes(ACME.encode(), "acme.md")
    plain = engine.retrieve("What is the maximum upload size?")
    assert plain.features is not None and plain.features.sentence is None
    engine.settings.refusal_gate = (0.5, 0.6, 0.3)
    read = engine.retrieve("What is the maximum upload size?")
    assert read.features is not None and read.features.sentence is not None
    expected = plain.gate_score + 0.3 * read.features.sentence  # type: ignore[operator]
    assert read.gate_score == pytest.approx(max(expected, 0.0), abs=1e-3)
    engine.settings.refusal_gate = (0.5, 0.6, 0.3, -0.1)
    kind = engine.retrieve("What is the maximum upload size?")  # asks for an amount
    assert kind.features is not None and kind.features.asks_kind == 1.0
    assert kind.gate_score == pytest.approx(max(expected - 0.1, 0.0), abs=1e-3)


def test_extractive_mode_needs_no_generator(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    engine.ingest_bytes(ACME.encode(), "acme.md")
    _, done = run(engine, "What is the maximum upload size?", answer_mode="extractive")
    assert done.mode == "extractive" and "2 GB" in done.answer and done.citations


def test_invalid_questions_are_rejected_clearly(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    with pytest.raises(InvalidQuestionError, match="empty"):
        list(engine.answer("   \x00 "))
    with pytest.raises(InvalidQuestionError, match="RAGCHAT_MAX_QUESTION_CHARS"):
        list(engine.answer("why? " * 5000))


def test_chat_logs_turns_and_uses_history(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, reply="The maximum upload size of Acme Cloud is 2 GB per file.")
    engine.ingest_bytes(ACME.encode(), "acme.md")
    events = list(engine.chat("What is the maximum upload size of Acme Cloud?"))
    logged = events[-1]
    assert isinstance(logged, Logged)
    events2 = list(engine.chat("And what about its refunds?", logged.conversation_id))
    retrieved = events2[0]
    assert isinstance(retrieved, Retrieved) and "upload" in retrieved.query
    turns = engine.log.turns(logged.conversation_id, "local")
    assert [t.position for t in turns] == sorted(t.position for t in turns) and len(turns) == 2
    assert turns[0].citations and turns[0].hits


def test_stopped_chat_is_logged_as_stopped(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, reply=" ".join(["Annual plans can be refunded."] * 30))
    engine.ingest_bytes(ACME.encode(), "acme.md")
    stop = threading.Event()
    it = engine.chat("How long do refunds take for annual plans?", stop=stop)
    conv_id = None
    for event in it:
        if isinstance(event, Token):
            stop.set()
        if isinstance(event, Logged):
            conv_id = event.conversation_id
    assert conv_id is not None
    [turn] = engine.log.turns(conv_id, "local")
    assert turn.status == "stopped"


def test_generation_error_is_a_logged_error_turn(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    engine.generator = FakeGenerator(
        "Annual plans can be refunded in full. More text here.", fail_after=3
    )
    engine.ingest_bytes(ACME.encode(), "acme.md")
    events = list(engine.chat("How long do refunds take for annual plans?"))
    done = next(e for e in events if isinstance(e, Done))
    assert done.status == "error" and done.error and "fake generator failed" in done.error


def test_repeated_sentence_ends_the_answer(tmp_path: Path) -> None:
    sentence = "Annual plans can be refunded in full within 30 days of purchase. "
    engine = make_engine(tmp_path, reply=sentence * 20)
    engine.ingest_bytes(ACME.encode(), "acme.md")
    events, done = run(engine, "How long do I have to get a refund on an annual plan?")
    assert done.status == "complete"
    assert len(done.sentences) == 1 and done.answer.count("30 days") == 1
    assert sum(isinstance(e, Token) for e in events) < 20 * 11  # generation was cut short


def test_every_entry_point_ingests_through_one_batched_path(tmp_path: Path) -> None:
    from rag_core.testing import FakeEmbedder

    class Counting(FakeEmbedder):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[int] = []

        def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
            self.calls.append(len(texts))
            return super().embed_documents(texts)

    embedder = Counting()
    engine = fake_engine(Settings(home=tmp_path / "home", max_file_mb=0.001), embedder=embedder)
    small = tmp_path / "a.md"
    small.write_text("# A\n\nThe Vexel pump moves 40 litres per minute.\n")
    staged = tmp_path / "f3a9.txt"  # an upload stored under a generated name
    staged.write_text("The Quarnet turbine spins at 7200 rpm.")
    big = tmp_path / "big.txt"
    big.write_text("word " * 1000)
    results = engine.ingest(
        [
            small,
            tmp_path / "missing.md",
            (staged, "turbine notes.txt"),
            big,
            (b"The Lorn office opens at 9.", "office.txt"),
        ]
    )
    assert [r.status for r in results] == ["added", "error", "added", "error", "added"]
    assert results[2].document is not None and results[2].document.name == "turbine notes.txt"
    assert "cannot read file" in (results[1].error or "")
    assert "RAGCHAT_MAX_FILE_MB" in (results[3].error or "")
    assert embedder.calls == [3]  # the three files' chunks embedded in one batch

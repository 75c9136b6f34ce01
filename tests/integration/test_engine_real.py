"""The engine end to end with the real default models, a real Chroma store and real databases.

Real files of every format are made in the test, ingested, and asked about; the cited chunk must
be the right one, and questions the documents cannot answer must be refused.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rag_core.config import Settings
from rag_core.engine import Engine
from rag_core.grounding import UNSUPPORTED_MARK
from rag_core.stores.chroma import ChromaStore
from rag_core.testing import fake_engine
from rag_core.types import Done, Logged, Retrieved, Token
from tests import docmaker

pytestmark = pytest.mark.integration

ACME = (
    "Acme Cloud offers monthly and annual plans for teams of every size. Annual plans can be "
    "refunded in full within 30 days of purchase. Monthly plans are not refundable, but they "
    "can be cancelled at any time from the billing page."
)
ZORBLAX = (
    "The Zorblax reactor was commissioned by Dr. Ilse Varga. It supplies heat to the northern "
    "district through a network of insulated pipes."
)


@pytest.fixture(scope="module")
def engine_factory(real_embedder, real_generator, tmp_path_factory):  # type: ignore[no-untyped-def]
    def make(db_url: str) -> Engine:
        home = tmp_path_factory.mktemp("home")
        settings = Settings(home=home, database_url=db_url, answer_strategy="concat")
        return fake_engine(
            settings,
            embedder=real_embedder,
            store=ChromaStore(path=home / "chroma"),
            generator=real_generator,
        )

    return make


def ask(engine: Engine, question: str, **kw: object) -> tuple[list[object], Done]:
    events = list(engine.answer(question, (), engine.options(**kw)))  # type: ignore[arg-type]
    done = events[-1]
    assert isinstance(done, Done), done
    return events, done


def cited_texts(done: Done) -> str:
    return " ".join(c.chunk.text for c in done.citations)


def test_every_format_is_answerable_with_the_right_citation(engine_factory, db_url) -> None:  # type: ignore[no-untyped-def]
    engine = engine_factory(db_url)
    files = {
        "manual.pdf": docmaker.make_pdf(
            [
                "Setup. Unpack the Lumen lamp and place it on a flat surface.",
                "Battery. The Lumen lamp battery lasts 14 hours on a full charge.",
                "Cleaning. Wipe the Lumen lamp with a dry cloth only.",
            ]
        ),
        "policy.docx": docmaker.make_docx(
            ["# Billing", ACME, "# Support", "Support tickets are answered within 2 business days."]
        ),
        "reactor.html": docmaker.make_html(["# Reactor", ZORBLAX, "# History", "It was rebuilt."]),
        "notes.md": docmaker.make_markdown(
            ["# Garden", "The greenhouse door code is changed every Monday by the caretaker."]
        ),
        "shipping.txt": b"Orders ship from Rotterdam. Express shipping to Belgium takes one day.\n",
    }
    for name, data in files.items():
        result = engine.ingest_bytes(data, name)
        assert result.status == "added", result.error

    _, done = ask(engine, "How long does the Lumen lamp battery last on a full charge?")
    assert not done.refused
    assert "14 hours" in done.answer
    assert done.citations and done.citations[0].chunk.document_name == "manual.pdf"
    assert done.citations[0].chunk.page == 2  # the exact page of the PDF

    _, done = ask(engine, "Within how many days can an Acme Cloud annual plan be refunded?")
    assert "30 days" in done.answer and "policy.docx" in {
        c.chunk.document_name for c in done.citations
    }
    assert any(c.chunk.heading_path == ("Billing",) for c in done.citations)

    _, done = ask(engine, "Who commissioned the Zorblax reactor?")
    assert "Varga" in done.answer
    assert {c.chunk.document_name for c in done.citations} == {"reactor.html"}

    _, done = ask(engine, "Where do orders ship from?", answer_mode="extractive")
    assert "Rotterdam" in done.answer and done.citations[0].chunk.document_name == "shipping.txt"

    events, done = ask(engine, "What is the population of Tokyo?")
    assert done.refused and done.mode == "refused" and not done.citations
    assert [e for e in events if isinstance(e, Token)]  # the refusal text is shown

    # delete: never retrieved again
    engine.delete_document("manual.pdf")
    _, done = ask(engine, "How long does the Lumen lamp battery last on a full charge?")
    assert all(h.chunk.document_name != "manual.pdf" for h in done.hits)
    assert "14 hours" not in done.answer


def test_bad_files_give_specific_errors_and_change_nothing(engine_factory) -> None:  # type: ignore[no-untyped-def]
    engine = engine_factory("sqlite://")
    engine.ingest_bytes(b"Orders ship from Rotterdam.\n", "shipping.txt")
    before = (engine.store.count(), engine.keyword.count(), [d.id for d in engine.documents()])
    cases = {
        "empty.txt": (b"", "empty"),
        "broken.pdf": (docmaker.make_truncated_pdf(), "PDF"),
        "binary.txt": (docmaker.make_binary_txt(), "binary"),
        "latin.txt": (docmaker.make_invalid_utf8(), "UTF-8"),
        "archive.docx": (docmaker.make_zip_renamed_docx(), "ZIP"),
        "image.xyz": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "PNG"),
    }
    for name, (data, expected) in cases.items():
        result = engine.ingest_bytes(data, name)
        assert result.status == "error", name
        assert result.error and name in result.error and expected.lower() in result.error.lower()
    after = (engine.store.count(), engine.keyword.count(), [d.id for d in engine.documents()])
    assert after == before


# The three cases where SmolLM2-135M, left alone, answers from nowhere (issue: grounding).
def supported_text(done: Done) -> str:
    return " ".join(c.text for c in done.sentences if c.supported)


def test_regression_refund_window_is_never_six_months(engine_factory) -> None:  # type: ignore[no-untyped-def]
    engine = engine_factory("sqlite://")
    engine.ingest_bytes(ACME.encode(), "billing.txt")
    _, done = ask(engine, "How long do I have to get a refund on an Acme Cloud annual plan?")
    assert not re.search(r"\b(6|six) months\b", supported_text(done), re.IGNORECASE)
    for check in done.sentences:  # anything unsupported that is shown carries the mark
        if not check.supported and check.claim and check.text in done.answer:
            assert f"{check.text} {UNSUPPORTED_MARK}" in done.answer
    assert "30 days" in supported_text(done) and done.citations


def test_regression_no_invented_ceo(engine_factory) -> None:  # type: ignore[no-untyped-def]
    engine = engine_factory("sqlite://")
    engine.ingest_bytes(ACME.encode(), "billing.txt")
    _, done = ask(engine, "What is the name of the CEO of Acme Cloud?")
    assert "Ethan" not in supported_text(done)
    for check in done.sentences:
        if "ethan" in check.text.lower():
            assert not check.supported and f"{check.text} {UNSUPPORTED_MARK}" in done.answer


def test_regression_no_invented_opening_date(engine_factory) -> None:  # type: ignore[no-untyped-def]
    engine = engine_factory("sqlite://")
    engine.ingest_bytes(ZORBLAX.encode(), "reactor.txt")
    engine.ingest_bytes(ACME.encode(), "billing.txt")
    _, done = ask(engine, "Who commissioned the Zorblax reactor?")
    assert "Varga" in supported_text(done)
    assert not re.search(r"\b(1[5-9]|20)\d\d\b", supported_text(done))  # no invented year
    assert {c.chunk.document_name for c in done.citations} == {"reactor.txt"}


def test_chat_is_logged_with_citations_on_both_databases(engine_factory, db_url) -> None:  # type: ignore[no-untyped-def]
    engine = engine_factory(db_url)
    engine.ingest_bytes(ZORBLAX.encode(), "reactor.txt")
    events = list(engine.chat("Who commissioned the Zorblax reactor?"))
    logged = events[-1]
    assert isinstance(logged, Logged)
    turn = engine.log.get_turn(logged.turn_id, "local")
    assert turn.hits and turn.citations and turn.citations[0].chunk.document_name == "reactor.txt"
    assert turn.sentences and turn.config["retrieval_mode"] == "hybrid"
    assert turn.timings.retrieval_ms > 0


DEMO = Path(__file__).resolve().parents[2] / "assets" / "demo"


def test_refusal_gate_on_the_demo_documents(engine_factory) -> None:  # type: ignore[no-untyped-def]
    """The calibrated gate (default settings) answers what the demo documents say and refuses
    what they do not, including near misses that share the documents' vocabulary.

    "How do I require a login?" (0.32 with the default settings, threshold 0.219; best
    similarity only 0.32, every term in one passage) was refused before coverage counted one
    passage's terms. Known miss, not asserted: "How do I connect ragchat to my Salesforce
    account?" is answered (0.224: every word but "Salesforce" is in the documents)."""
    engine = engine_factory("sqlite://")
    for path in sorted(DEMO.iterdir()):
        assert engine.ingest_bytes(path.read_bytes(), path.name).status == "added"
    answerable = [
        "How long does a full charge of the Lumen L2 take?",
        "What happens when I upload a file that is already in the knowledge base?",
        "How long is the warranty on the desk lamp?",
        "How does ragchat check the sentences of an answer?",
        "How do I require a login?",
        "Describe the Lumen L2 lamp in detail.",
        "Explain how ragchat checks answers.",
        # the gate alone refuses it (0.20); the sentence holding the asked colour overrides it
        "What colour is the charging ring when the battery is full?",
    ]
    unanswerable = [
        "What is the population of Tokyo?",
        "How do I reset the admin password of my wifi router?",
        "Who won the FIFA World Cup in 2018?",
        "What is the price of the Lumen L3 floor lamp?",  # the L2's documents, not the L3's
    ]
    for question in answerable:
        retrieved = next(
            iter(engine.answer(question, (), engine.options(answer_mode="extractive")))
        )
        assert isinstance(retrieved, Retrieved) and not retrieved.refused, (question, retrieved)
    for question in unanswerable:
        retrieved = next(
            iter(engine.answer(question, (), engine.options(answer_mode="extractive")))
        )
        assert isinstance(retrieved, Retrieved) and retrieved.refused, (question, retrieved)

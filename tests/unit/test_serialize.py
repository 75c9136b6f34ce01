"""webapp/serialize.py: an answer as the engine gives it (Done) and as the log returns it
(TurnRecord) become the same JSON-able dicts."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime

from rag_core.db.records import TurnRecord
from rag_core.types import Chunk, Citation, Done, Hit, SentenceCheck, Timings
from webapp import serialize

TEXT = "The pump runs at 42 bar. Grease it monthly."
PUMP = Chunk("c1", "d1", "pump.md", "v1", 0, TEXT, 10, 10 + len(TEXT), 3, 4, ("Pump", "Care"))
OTHER = Chunk("c2", "d2", "other.md", "v2", 5, "Unrelated.", 0, 10)
HITS = (
    Hit(PUMP, 1, 0.5, dense_score=0.8, dense_rank=1, keyword_score=3.0, keyword_rank=2),
    Hit(OTHER, 2, 0.25, dense_score=0.4, dense_rank=2),
)
CITATION = Citation(1, PUMP, "The pump runs at 42 bar.", 0, 24)
SENTENCE = SentenceCheck(0, "It runs at 42 bar. [1]", True, 0.91, 1, "The pump runs at 42 bar.")
TIMINGS = Timings(12.0, 30.5, 80.0, 95.0, 9, 112.5, 140)
DONE = Done(
    question="How hard does the pump push?",
    query="pump pressure",
    answer="It runs at 42 bar. [1]",
    raw_answer="It runs at 42 bar [1].",
    citations=(CITATION,),
    hits=HITS,
    sentences=(SENTENCE,),
    refused=False,
    mode="generated",
    status="complete",
    timings=TIMINGS,
    config={"top_k": 5},
)


def test_a_done_becomes_plain_dicts() -> None:
    data = serialize.answer(DONE)
    assert data["question"] == DONE.question and data["query"] == "pump pressure"
    assert data["answer"] == DONE.answer and data["raw_answer"] == DONE.raw_answer
    assert not data["refused"] and data["mode"] == "generated" and data["error"] is None
    assert data["citations"] == [
        {
            "number": 1,
            "document": "pump.md",
            "document_id": "d1",
            "version": "v1",
            "page": 3,
            "page_end": 4,
            "heading_path": ["Pump", "Care"],
            "ocr": False,
            "chunk_id": "c1",
            "char_start": 10,
            "char_end": 10 + len(TEXT),
            "text": TEXT,
            "support": "The pump runs at 42 bar.",
            "support_start": 0,
            "support_end": 24,
        }
    ]
    first, second = data["passages"]
    assert first["number"] == first["rank"] == 1 and first["found_by"] == "both"
    assert first["score"] == 0.5
    assert (first["dense_score"], first["keyword_score"], first["cited"]) == (0.8, 3.0, True)
    assert first["chunk_id"] == "c1" and first["heading_path"] == ["Pump", "Care"]
    assert (second["number"], second["found_by"], second["cited"]) == (2, "dense", False)
    assert second["keyword_score"] is None and second["page"] is None
    assert data["sentences"] == [
        {
            "index": 0,
            "text": "It runs at 42 bar. [1]",
            "supported": True,
            "score": 0.91,
            "citation": 1,
            "support": "The pump runs at 42 bar.",
            "reason": "",
            "verdict": "supported",
        }
    ]
    assert data["timings"] == {
        "retrieval_ms": 12.0,
        "first_token_ms": 30.5,
        "generation_ms": 80.0,
        "total_ms": 95.0,
        "tokens": 9,
        "tokens_per_s": 112.5,
        "prompt_tokens": 140,
    }
    assert data["config"] == {"top_k": 5}
    assert json.loads(json.dumps(data)) == data  # plain JSON, nothing lost


def test_a_logged_turn_becomes_the_same_dicts() -> None:
    created = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    record = TurnRecord(
        id=7,
        conversation_id="conv",
        position=1,
        question=DONE.question,
        query=DONE.query,
        answer=DONE.answer,
        raw_answer=DONE.raw_answer,
        refused=False,
        mode="generated",
        status="complete",
        error=None,
        timings=asdict(TIMINGS),  # as the log stores them
        config={"top_k": 5},
        created_at=created,
        feedback_rating=1,
        feedback_comment="good",
        hits=HITS,
        citations=(CITATION,),
        sentences=(SENTENCE,),
    )
    data = serialize.turn(record)
    assert {k: v for k, v in data.items() if k in serialize.answer(DONE)} == serialize.answer(DONE)
    assert data["id"] == 7 and data["conversation_id"] == "conv" and data["position"] == 1
    assert data["created_at"] == created.isoformat()
    assert (data["feedback_rating"], data["feedback_comment"]) == (1, "good")
    assert json.loads(json.dumps(data)) == data


def test_pick_keeps_the_order_and_renames() -> None:
    data = serialize.citation(CITATION)
    picked = serialize.pick(data, ["n", "document", "text"], n="number")
    assert list(picked.items()) == [("n", 1), ("document", "pump.md"), ("text", TEXT)]
    assert serialize.pick(data, "n text", n="number") == {"n": 1, "text": TEXT}


def test_ragchat_ask_json_keeps_its_field_names() -> None:
    """`ragchat ask --json` is built from the same dicts but keeps the names scripts read."""
    from webapp.cli import done_json

    data = done_json(DONE)
    assert " ".join(data) == (
        "question query answer raw_answer mode refused status error citations sentences "
        "retrieved timings config"
    )
    assert " ".join(data["citations"][0]) == (
        "n document document_id version page heading_path ocr chunk_id char_start char_end "
        "support text"
    )  # `ocr` added (text read from a scan); the older fields keep their names and order
    assert [p["rank"] for p in data["retrieved"]] == [1, 2]
    assert " ".join(data["retrieved"][0]) == (
        "rank score dense_score keyword_score found_by document document_id page heading_path ocr "
        "chunk_id cited text"
    )
    assert data["sentences"] == serialize.answer(DONE)["sentences"]
    assert data["timings"] == serialize.answer(DONE)["timings"]

"""Replay with the real default models, a real Chroma store and both databases: the same turn on
an unchanged knowledge base replays the same answer, an edited document is named and changes
the answer, a deleted one turns it into a refusal."""

from __future__ import annotations

import pytest

from rag_core.config import Settings
from rag_core.engine import Engine
from rag_core.replay import replay_turn
from rag_core.stores.chroma import ChromaStore
from rag_core.testing import fake_engine
from rag_core.types import Logged

pytestmark = pytest.mark.integration

ACME = (
    "Acme Cloud offers monthly and annual plans for teams of every size. Annual plans can be "
    "refunded in full within 30 days of purchase. Monthly plans are not refundable, but they "
    "can be cancelled at any time from the billing page."
)
SHIPPING = "Orders ship from Rotterdam. Express shipping to Belgium takes one day."


def test_replay_names_what_changed_since_the_turn(  # type: ignore[no-untyped-def]
    real_embedder, real_generator, tmp_path, db_url
) -> None:
    settings = Settings(home=tmp_path / "home", database_url=db_url)
    engine: Engine = fake_engine(
        settings,
        embedder=real_embedder,
        store=ChromaStore(path=tmp_path / "home" / "chroma"),
        generator=real_generator,
    )
    engine.ingest_bytes(ACME.encode(), "billing.txt")
    engine.ingest_bytes(SHIPPING.encode(), "shipping.txt")
    question = "How long do I have to get a refund on an Acme Cloud annual plan?"
    events = list(engine.chat(question, options=engine.options(max_new_tokens=48)))
    logged = events[-1]
    assert isinstance(logged, Logged)
    turn = engine.log.get_turn(logged.turn_id, "local")
    assert not turn.refused and turn.gate_score is not None and "30 days" in turn.answer

    same = replay_turn(engine, turn.id, "local")
    assert same.after.config["max_new_tokens"] == 48  # the turn's own settings
    assert not same.answer_changed and not same.citations_moved and same.documents == ()
    assert {p.change for p in same.passages} == {"same"}
    assert same.gate_after == pytest.approx(same.gate_before, abs=1e-3)

    engine.ingest_bytes(ACME.replace("30 days", "14 days").encode(), "billing.txt")
    edited = replay_turn(engine, turn.id, "local")
    assert [(d.name, d.status) for d in edited.documents] == [("billing.txt", "replaced")]
    assert edited.citations_moved and "14" in edited.after.answer
    assert "30 days" in edited.before.answer  # the log keeps what was said
    assert {"in", "out"} <= {p.change for p in edited.passages}

    engine.delete_document("billing.txt")
    gone = replay_turn(engine, turn.id, "local")
    assert gone.refusal_appeared and [d.status for d in gone.documents] == ["deleted"]
    assert len(engine.log.turns(turn.conversation_id, "local")) == 1  # replays log nothing

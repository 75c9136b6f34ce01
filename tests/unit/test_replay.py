"""Replay of logged turns with fakes for the models (fast): the settings snapshot is applied, and
each kind of change (answer, citations, passages, gate, verdicts, documents, models) is named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rag_core.config import Settings
from rag_core.engine import Engine
from rag_core.errors import ConversationNotFoundError, UserError
from rag_core.replay import diff_sentences, replay_settings, replay_since, replay_turn
from rag_core.testing import FakeGenerator, fake_engine
from rag_core.types import Logged, SentenceCheck

ACME = (
    "# Billing\n\nAcme Cloud offers monthly and annual plans. Annual plans can be refunded in full "
    "within 30 days of purchase. Monthly plans are not refundable.\n\n# Limits\n\nThe maximum "
    "upload size of Acme Cloud is 2 GB per file.\n"
)
REFUND = "How long do I have to get a refund on an annual plan?"
ANSWER = "Annual plans can be refunded in full within 30 days of purchase."


def make_engine(tmp_path: Path, reply: str = ANSWER, **overrides: object) -> Engine:
    settings = Settings(home=tmp_path, refusal_threshold=0.2, **overrides)  # type: ignore[arg-type]
    return fake_engine(settings, reply=reply)


def ask(engine: Engine, question: str = REFUND, user: str = "local", **options: object) -> int:
    """Ask in a new logged conversation; the turn id."""
    events = list(engine.chat(question, user=user, options=engine.options(**options)))  # type: ignore[arg-type]
    logged = events[-1]
    assert isinstance(logged, Logged)
    return logged.turn_id


def generator(engine: Engine) -> FakeGenerator:
    assert isinstance(engine.generator, FakeGenerator)
    return engine.generator


def test_an_unchanged_knowledge_base_replays_the_same_answer(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    engine.ingest_bytes(ACME.encode(), "acme.md")
    turn_id = ask(engine)
    replay = replay_turn(engine, turn_id, "local")
    assert replay.before.id == turn_id and replay.after.answer == replay.before.answer
    assert not (replay.answer_changed or replay.citations_moved or replay.changed)
    assert replay.passages and {p.change for p in replay.passages} == {"same"}
    assert replay.gate_before is not None and replay.gate_before == replay.gate_after
    assert all(not s.changed for s in replay.sentences) and replay.sentences
    assert replay.documents == () and not replay.models_differ and replay.notes == ()
    assert len(engine.log.turns(replay.before.conversation_id, "local")) == 1  # nothing logged


def test_a_replaced_document_and_a_new_answer_are_named(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    old = engine.ingest_bytes(ACME.encode(), "acme.md").document
    turn_id = ask(engine)
    new = engine.ingest_bytes(ACME.replace("30 days", "14 days").encode(), "acme.md").document
    assert old is not None and new is not None and new.version == 2
    generator(engine).reply = "Annual plans can be refunded in full within 14 days of purchase."
    replay = replay_turn(engine, turn_id, "local")
    assert replay.answer_changed and "14 days" in replay.after.answer
    assert replay.citations_moved  # the cited passage's text changed
    assert [(d.name, d.status, d.current) for d in replay.documents] == [
        ("acme.md", "replaced", new)
    ]
    kinds = {p.change for p in replay.passages}
    assert "in" in kinds and "out" in kinds  # the edited passage left, its new text came in
    changed = [s for s in replay.sentences if s.changed]
    assert changed and any(s.after and "14 days" in s.after.text for s in changed)


def test_a_deleted_document_makes_a_refusal_appear(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    engine.ingest_bytes(ACME.encode(), "acme.md")
    turn_id = ask(engine)
    engine.delete_document("acme.md")
    replay = replay_turn(engine, turn_id, "local")
    assert replay.refusal_appeared and not replay.refusal_vanished
    assert replay.gate_after is None and replay.gate_before is not None
    assert [(d.name, d.status) for d in replay.documents] == [("acme.md", "deleted")]
    assert replay.passages and {p.change for p in replay.passages} == {"out"}
    assert all(p.rank_after is None and p.rank_before for p in replay.passages)


def test_the_turns_own_settings_are_used_not_todays(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    engine.ingest_bytes(ACME.encode(), "acme.md")
    turn_id = ask(engine, top_k=1, answer_mode="extractive", mode="bm25")
    replay = replay_turn(engine, turn_id, "local")  # today: top_k 5, generate, hybrid
    assert len(replay.after.hits) == 1 and replay.after.mode == "extractive"
    assert replay.after.config["retrieval_mode"] == "bm25" and replay.after.config["top_k"] == 1
    assert generator(engine).calls == []  # an extractive turn never ran the generator


def test_a_turn_answered_by_another_generator_says_so(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    engine.ingest_bytes(ACME.encode(), "acme.md")
    turn_id = ask(engine)
    today = fake_engine(
        Settings(home=tmp_path, refusal_threshold=0.2, generator="openai:http://127.0.0.1:9"),
        reply=ANSWER,
        store=engine.store,
        keyword=engine.keyword,
    )
    replay = replay_turn(today, turn_id, "local")
    assert replay.models_differ
    assert any("not the same run" in n and "'default'" in n for n in replay.notes)
    summary = replay_since(today, datetime.now(UTC) - timedelta(hours=1))
    assert summary.models_differ == (turn_id,)


def test_only_the_owner_replays_a_turn(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    engine.ingest_bytes(ACME.encode(), "acme.md")
    turn_id = ask(engine, user="alice")
    assert replay_turn(engine, turn_id, "alice").before.id == turn_id
    with pytest.raises(ConversationNotFoundError):
        replay_turn(engine, turn_id, "bob")


def test_a_follow_up_replays_with_the_history_before_it_only(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    engine.ingest_bytes(ACME.encode(), "acme.md")
    events = list(engine.chat(REFUND))
    logged = events[-1]
    assert isinstance(logged, Logged)
    list(engine.chat("And the maximum upload size?", logged.conversation_id))
    list(engine.chat("Are monthly plans refundable?", logged.conversation_id))
    turns = engine.log.turns(logged.conversation_id, "local")
    generator(engine).calls.clear()
    replay_turn(engine, turns[1].id, "local")
    prompt = " ".join(m.content for m in generator(engine).calls[-1])
    assert REFUND in prompt and "monthly plans refundable" not in prompt


def test_replay_since_counts_what_changed(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    engine.ingest_bytes(ACME.encode(), "acme.md")
    start = datetime.now(UTC) - timedelta(seconds=5)
    kept = ask(engine, "What is the maximum upload size of Acme Cloud?")
    refund = ask(engine)
    generator(engine).reply = "Annual plans can be refunded in full within 30 days. Call us."
    summary = replay_since(engine, start)
    assert [r.before.id for r in summary.replays] == [kept, refund] and summary.failures == ()
    assert set(summary.answers_changed) == {kept, refund}
    assert summary.refusals_appeared == () and summary.refusals_vanished == ()
    assert replay_since(engine, datetime.now(UTC) + timedelta(hours=1)).replays == ()
    assert [r.before.id for r in replay_since(engine, start, user="bob").replays] == []


def test_a_snapshot_that_cannot_be_replayed_is_a_clear_error(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    with pytest.raises(UserError, match="top_k"):
        replay_settings(settings, {"top_k": 999})
    _s, options, differ, notes = replay_settings(settings, {"top_k": 3, "fusion_alpha": 0.5})
    assert options.top_k == 3 and _s.fusion_alpha == 0.5 and not differ
    # a turn logged before fusion_normalise existed was ranked with 'max', whatever today's is
    z_today = settings.model_copy(update={"fusion_normalise": "z"})
    assert replay_settings(z_today, {"top_k": 3})[0].fusion_normalise == "max"
    assert replay_settings(z_today, {"fusion_normalise": "z"})[0].fusion_normalise == "z"
    assert notes and "today's value used" in notes[0] and "candidates" in notes[0]


def test_sentences_are_aligned_by_text() -> None:
    def check(text: str, verdict: str = "supported") -> SentenceCheck:
        return SentenceCheck(0, text, verdict == "supported", 0.9, verdict=verdict)  # type: ignore[arg-type]

    before = [check("A."), check("B."), check("C.")]
    after = [check("A."), check("C.", "marked"), check("D.")]
    pairs = [
        (p.before.text if p.before else None, p.after.text if p.after else None)
        for p in diff_sentences(before, after)
    ]
    assert pairs == [("A.", "A."), ("B.", None), ("C.", "C."), (None, "D.")]
    assert [p.changed for p in diff_sentences(before, after)] == [False, True, True, True]


def test_the_command_line_replays_one_turn_or_every_turn_since_a_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from webapp import cli

    engine = make_engine(tmp_path)
    engine.ingest_bytes(ACME.encode(), "acme.md")
    turn_id = ask(engine, user="alice")  # the operator replays anyone's turn
    monkeypatch.setattr(cli, "_engine", lambda settings: engine)
    engine.delete_document("acme.md")
    assert cli.main(["replay", str(turn_id), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["turn_id"] == turn_id and data["changed"]["refusal_appeared"] is True
    assert data["documents"][0]["status"] == "deleted"
    assert cli.main(["replay", str(turn_id)]) == 0
    text = capsys.readouterr().out
    assert "refusal appeared" in text and "acme.md: deleted since" in text and "out " in text
    assert cli.main(["replay", "--since", "2000-01-01", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["turns"] == 1 and summary["refusals_appeared"] == [turn_id]
    assert cli.main(["replay", "--since", "2000-01-01"]) == 0
    assert f"Refusals appeared: 1 (turns {turn_id})" in capsys.readouterr().out
    assert cli.main(["replay", "--since", "yesterday"]) == 1
    assert "not a date" in capsys.readouterr().err
    assert cli.main(["replay"]) == 1 and cli.main(["replay", "999999"]) == 1
    assert "Turn 999999 not found" in capsys.readouterr().err

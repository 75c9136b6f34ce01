"""Rated answers -> a BEIR evaluation set (rag_core.evaluation.feedback) and `ragchat eval
feedback`, with fakes for the models: the labels each rating gives, the export, the figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag_core.config import Settings
from rag_core.db.records import Feedback, passage_id
from rag_core.engine import Engine
from rag_core.errors import UserError
from rag_core.evaluation import load_beir, read_questions
from rag_core.evaluation.feedback import feedback_set, label
from rag_core.testing import InMemoryStore, fake_engine
from rag_core.types import Logged
from webapp import cli, eval_cli

ACME = (
    "# Billing\n\nAcme Cloud offers monthly and annual plans. Annual plans can be refunded in full "
    "within 30 days of purchase. Monthly plans are not refundable.\n\n# Limits\n\nThe maximum "
    "upload size of Acme Cloud is 2 GB per file.\n"
)
KETTLE = "# Kettle\n\nDescale the kettle with vinegar and water every month.\n"
REPLY = "Annual plans can be refunded in full within 30 days of purchase."


def make_engine(home: Path, store: InMemoryStore | None = None) -> Engine:
    settings = Settings(home=home, refusal_threshold=0.0)
    return fake_engine(settings, reply=REPLY, store=store)


def ask(engine: Engine, question: str, user: str = "local") -> int:
    logged = list(engine.chat(question, user=user))[-1]
    assert isinstance(logged, Logged)
    return logged.turn_id


@pytest.fixture
def rated(tmp_path: Path) -> tuple[Engine, dict[str, int]]:
    """Four rated answers and one that is not rated."""
    engine = make_engine(tmp_path / "home")
    engine.ingest_bytes(ACME.encode(), "acme.md")
    engine.ingest_bytes(KETTLE.encode(), "kettle.md")
    turns = {
        "up": ask(engine, "How long do I have to get a refund on an annual plan?"),
        "marked": ask(engine, "How often should I descale the kettle?"),
        "should_refuse": ask(engine, "Who founded Acme Cloud?"),
        "none": ask(engine, "What colour is the kettle?", user="bob"),
        "unrated": ask(engine, "What is the upload limit?"),
    }
    log = engine.log
    log.set_feedback(turns["up"], "local", 1)
    record = log.get_turn(turns["marked"], "local")
    kettle = next(i + 1 for i, h in enumerate(record.hits) if h.chunk.document_name == "kettle.md")
    log.set_feedback(
        turns["marked"], "local", -1, None, Feedback("wrong_citation", passage_id(record, kettle))
    )
    log.set_feedback(turns["should_refuse"], "local", -1, None, Feedback("should_refuse"))
    log.set_feedback(turns["none"], "bob", -1, None, Feedback(None, None, no_passage=True))
    return engine, turns


def test_each_rating_gives_its_labels(rated: tuple[Engine, dict[str, int]]) -> None:
    engine, turns = rated
    labels = {k: label(engine.log.get_turn(t, engine.log.turn_owner(t))) for k, t in turns.items()}
    assert labels["up"] == (frozenset({"acme.md"}), True)  # its citations vouch for acme.md
    assert labels["marked"] == (frozenset({"kettle.md"}), True)
    assert labels["should_refuse"] == (frozenset(), False)
    assert labels["none"] == (frozenset(), False)
    assert labels["unrated"] == (frozenset(), None)
    data = feedback_set(engine)
    assert [q.turn_id for q in data.queries] == [
        turns[k] for k in ("up", "marked", "should_refuse", "none")
    ]
    assert set(data.corpus) == {"acme.md", "kettle.md"}
    assert "Descale the kettle with vinegar" in data.corpus["kettle.md"].text
    assert (
        data.corpus["acme.md"].text.count("Annual plans can be refunded") == 1
    )  # no overlap twice
    assert [q.turn_id for q in feedback_set(engine, user="bob").queries] == [turns["none"]]
    with pytest.raises(UserError, match="No rated answers of 'carol'"):
        feedback_set(engine, user="carol")


def test_a_marked_passage_of_a_deleted_document_stays_in_the_corpus(
    rated: tuple[Engine, dict[str, int]],
) -> None:
    engine, _turns = rated
    engine.delete_document("kettle.md")
    data = feedback_set(engine)
    assert "Descale the kettle" in data.corpus["kettle.md"].text  # the logged passage


def test_eval_feedback_exports_a_beir_set_and_prints_the_figures(
    rated: tuple[Engine, dict[str, int]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine, turns = rated
    monkeypatch.setattr(cli, "_engine", lambda settings: engine)
    out = tmp_path / "export"
    assert cli.main(["eval", "feedback", "--export", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["rated"], report["judged"], report["unanswerable"]) == (4, 2, 2)
    assert set(report["modes"]) == {"hybrid", "dense", "bm25"}
    assert 0.0 <= report["modes"]["hybrid"]["ndcg_at_10"] <= 1.0
    answers = report["grounding"]["mark"]
    assert (answers["answerable"], answers["unanswerable"]) == (2, 2)
    dataset = load_beir(out, "test")
    assert dataset.qrels == {
        f"turn-{turns['up']}": {"acme.md": 1},
        f"turn-{turns['marked']}": {"kettle.md": 1},
    }
    assert read_questions(out / "unanswerable.txt") == [
        "Who founded Acme Cloud?",
        "What colour is the kettle?",
    ]
    labels = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    assert [(x["reason"], x["answerable"]) for x in labels] == [
        (None, True),
        ("wrong_citation", True),
        ("should_refuse", False),
        (None, False),
    ]
    assert cli.main(["eval", "feedback", "--mode", "bm25", "--no-answers"]) == 0
    text = capsys.readouterr().out
    assert "4 rated answers, 2 with a relevant document" in text and "bm25" in text
    assert "refusal recall" not in text
    # the exported set is one `ragchat eval retrieval` reads like any other
    stores: dict[Path, InMemoryStore] = {}

    def build(settings: Settings) -> Engine:
        if not (settings.home / eval_cli.MARKER).exists():
            stores[settings.home] = InMemoryStore()
        return make_engine(settings.home, stores[settings.home])

    monkeypatch.setattr(eval_cli, "_build_engine", build)
    args = ["eval", "retrieval", "--beir", str(out), "--index-dir", str(tmp_path / "idx"), "--json"]
    assert cli.main(args) == 0
    assert json.loads(capsys.readouterr().out)["queries"] == 2

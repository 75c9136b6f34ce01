"""The facts benchmark's scoring (rag_core/evaluation/facts.py) and `ragchat eval facts` with fakes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag_core.config import Settings
from rag_core.engine import Engine
from rag_core.evaluation.facts import (
    META_TALK,
    FactQuestion,
    contains_fact,
    fact_right,
    load_facts,
    summarize_facts,
)
from rag_core.testing import fake_engine
from webapp import eval_cli
from webapp.cli import main


def test_facts_match_at_word_boundaries() -> None:
    assert contains_fact("It lasts about 14 hours at 30%.", "14 hours")
    assert not contains_fact("It lasts about 114 hours.", "14 hours")
    assert not contains_fact("Allow 15 working days.", "5 working days")
    assert contains_fact("Costs EUR  25\u00a0per year", "eur 25 per year")
    assert not contains_fact("Costs 25.50 euros", "25")


def test_yes_no_needs_the_reason() -> None:
    q = FactQuestion("d1", "Are dogs allowed?", True, ("no",), "x.md", "yesno", ("bird", "nest"))
    assert fact_right(q, "No - dogs disturb the ground-nesting birds [1].")
    assert not fact_right(q, "No, they are not [1].")
    assert not fact_right(q, "Nothing says so.")


def test_meta_talk_is_recognised() -> None:
    for text in ("The answer is: 10 years.", "The passage says it runs 14 hours.",
                 "According to the text, yes.", "Question: How long?"):  # fmt: skip
        assert META_TALK.search(text), text
    assert not META_TALK.search("The lamp runs 14 hours at 30% brightness [1].")


@pytest.fixture
def facts_dir(tmp_path: Path) -> Path:
    root = tmp_path / "facts"
    (root / "documents").mkdir(parents=True)
    (root / "documents" / "lamp.md").write_text(
        "# Lamp\n\nThe Lumen lamp runs 14 hours on a full charge.\n", encoding="utf-8"
    )
    (root / "documents" / "ferry.txt").write_text(
        "The Quillon ferry leaves every 40 minutes.\n", encoding="utf-8"
    )
    rows = [
        {"id": "q1", "question": "How long does the Lumen lamp run on a full charge?",
         "answerable": True, "answers": ["14 hours"], "document": "lamp.md", "type": "duration"},
        {"id": "q2", "question": "How often does the Quillon ferry leave?", "answerable": True,
         "answers": ["40 minutes"], "document": "ferry.txt", "type": "duration"},
        {"id": "q3", "question": "What is the phone number of the lamp's maker?",
         "answerable": False, "answers": [], "document": None, "near": "lamp.md"},
    ]  # fmt: skip
    (root / "questions.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return root


def test_cli_facts_with_fakes(
    facts_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    reply = "The Lumen lamp runs 14 hours on a full charge [1]."

    def build(settings: Settings) -> Engine:
        return fake_engine(settings.model_copy(update={"refusal_threshold": 0.3}), reply=reply)

    monkeypatch.setattr(eval_cli, "_build_engine", build)
    assert main(["eval", "facts", str(facts_dir), "--strategy", "all", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    concat, quotes = out["strategies"]["concat"], out["strategies"]["extractive"]
    assert concat["answerable"] == 2 and concat["unanswerable"] == 1
    by_id = {(r["strategy"], r["id"]): r for r in out["answers"]}
    assert by_id[("concat", "q1")]["right"] and by_id[("extractive", "q1")]["right"]
    assert by_id[("extractive", "q2")]["right"]  # quotes the ferry sentence, cites ferry.txt
    assert not by_id[("concat", "q2")]["right"]  # the scripted reply is about the lamp
    assert concat["meta_talk"] == 0.0 and quotes["sentences_per_answer"] >= 1
    assert main(["eval", "facts", str(facts_dir), "--strategy", "bogus"]) == 1
    assert "unknown strategy" in capsys.readouterr().err


def test_summary_of_records(facts_dir: Path) -> None:
    facts = load_facts(facts_dir)
    assert [q.id for q in facts.questions] == ["q1", "q2", "q3"]
    assert [p.name for p in facts.documents] == ["ferry.txt", "lamp.md"]
    empty = summarize_facts([], "concat")
    assert empty.right is None and empty.refusal_recall is None

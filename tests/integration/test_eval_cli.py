"""`ragchat eval retrieval` end to end with the real default embedder, Chroma and SQLite, on a
30-document slice of the pyfaq dataset (../shared/eval/pyfaq)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from webapp.cli import main

PYFAQ = Path(__file__).resolve().parents[3] / "shared" / "eval" / "pyfaq"

pytestmark = pytest.mark.integration


def make_slice(dest: Path, n_queries: int = 10, n_distractors: int = 20) -> Path:
    """Every k-th dev question with its gold section, plus short FAQ sections as distractors."""
    corpus = {}
    for line in (PYFAQ / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        corpus[row["_id"]] = row
    queries = {}
    for line in (PYFAQ / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        queries[row["_id"]] = row
    rows = (PYFAQ / "qrels" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    qrels = [r.split("\t") for r in rows if r.strip()]
    step = max(len(qrels) // n_queries, 1)
    chosen = qrels[::step][:n_queries]
    gold = {doc for _, doc, _ in chosen}
    distractors = sorted(
        d for d, row in corpus.items()
        if d.startswith("faq/") and d not in gold and len(row["text"].split()) < 150
    )[:n_distractors]  # fmt: skip
    (dest / "qrels").mkdir(parents=True)
    with (dest / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for doc in sorted(gold) + distractors:
            fh.write(json.dumps(corpus[doc]) + "\n")
    with (dest / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for qid, _, _ in chosen:
            fh.write(json.dumps(queries[qid]) + "\n")
    lines = ["query-id\tcorpus-id\tscore", *("\t".join(r) for r in chosen)]
    (dest / "qrels" / "dev.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dest


@pytest.mark.skipif(not PYFAQ.is_dir(), reason="the pyfaq dataset is not next to the checkout")
def test_eval_retrieval_on_a_pyfaq_slice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RAGCHAT_HOME", str(tmp_path / "user-home"))
    monkeypatch.setenv("RAGCHAT_MODEL_CACHE", str(tmp_path / "models"))
    beir = make_slice(tmp_path / "pyfaq-slice")
    args = [
        "eval",
        "retrieval",
        "--beir",
        str(beir),
        "--index-dir",
        str(tmp_path / "idx"),
        "--json",
    ]

    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["queries"] == 10 and out["documents"] == 30 and out["index"]["errors"] == 0
    assert out["index"]["reused"] is False and out["index"]["chunks"] >= 30
    modes = out["modes"]
    assert modes["dense"]["ndcg_at_10"] > 0.5
    assert modes["hybrid"]["ndcg_at_10"] > 0.5
    assert modes["bm25"]["ndcg_at_10"] > 0.2
    for m in modes.values():
        assert m["recall_at_100"] >= 0.9 and 0 <= m["mrr_at_10"] <= 1
        assert 0 < m["latency_p50_ms"] <= m["latency_p95_ms"] < 2000
    assert not (tmp_path / "user-home").exists()

    t0 = time.perf_counter()
    assert main([*args, "--mode", "dense"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["index"]["reused"] is True
    assert again["modes"]["dense"]["ndcg_at_10"] == pytest.approx(modes["dense"]["ndcg_at_10"])
    assert time.perf_counter() - t0 < 30

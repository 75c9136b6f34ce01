"""Switching the embedder: real default embedder, a second small sentence-transformers model
made in the test (random weights, 32 dimensions), real Chroma, SQLite and PostgreSQL.

A start with the other embedder fails with an error naming both and `ragchat reindex`; the
command re-embeds every chunk into a new collection while the old engine keeps answering, then
swaps; afterwards every chunk is found by the new model, and an engine built before the swap
follows it. A run that dies midway (an injected failure) leaves the old index active and
resumes where it stopped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag_core.config import Settings
from rag_core.db.indexes import IndexRegistry
from rag_core.engine import Engine
from rag_core.errors import IndexMismatchError
from rag_core.factory import build_engine, build_reindexer
from rag_core.reindex import Reindexer
from webapp import cli

pytestmark = pytest.mark.integration

DOCS = {
    "alpha.md": "# Alpha\n\n"
    + "\n\n".join(f"Alpha rule {i}: the quillfeather valve {i} opens at dawn." for i in range(30)),
    "beta.md": "# Beta\n\nThe brassmoth engine runs on seawater and hums at night.\n",
    "gamma.txt": "The tinderfox lamp glows green when its battery is full.\n",
    **{
        f"manual-{i}.txt": f"Manual {i}. The cogwheel {i} turns {i + 2} times a minute. "
        f"Oil part {i} every {i + 3} weeks."
        for i in range(6)
    },
}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sentence-transformers folder: one BERT layer of width 32 with random weights and the
    default model's tokenizer, mean pooling, normalised."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    from rag_core.models import default_embedder_path

    root = tmp_path_factory.mktemp("tiny")
    tokenizer = AutoTokenizer.from_pretrained(str(default_embedder_path()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=512,
    )  # fmt: skip
    torch.manual_seed(17)
    BertModel(config).save_pretrained(root / "bert")
    tokenizer.save_pretrained(root / "bert")
    word = Transformer(str(root / "bert"), max_seq_length=256)
    st = SentenceTransformer(modules=[word, Pooling(32, "mean"), Normalize()], device="cpu")
    st.save(str(root / "st"))
    return root / "st"


@pytest.fixture
def env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A data folder on this database, seen by `ragchat` commands run in this process."""
    for key in list(os.environ):
        if key.startswith("RAGCHAT_") and key != "RAGCHAT_MODEL_CACHE":
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    monkeypatch.setenv("RAGCHAT_HOME", str(home))
    monkeypatch.setenv("RAGCHAT_DATABASE_URL", db_url)
    monkeypatch.setenv("RAGCHAT_CHUNK_SIZE", "48")
    monkeypatch.setenv("RAGCHAT_CHUNK_OVERLAP", "0")
    monkeypatch.setenv("RAGCHAT_EMBED_PRECISION", "float32")
    # the second embedder has random weights: its cosines carry no meaning, so the checks that a
    # question still finds its document rely on BM25. Z-normalised fusion would scale that noise
    # up to BM25's weight; the max-normalised fusion keeps the cosines' own small spread.
    monkeypatch.setenv("RAGCHAT_FUSION_NORMALISE", "max")
    monkeypatch.setenv("RAGCHAT_FUSION_ALPHA", "0.9")
    yield Settings()


def _seed(settings: Settings) -> Engine:
    engine = build_engine(settings)
    results = [engine.ingest_bytes(t.encode(), n) for n, t in DOCS.items()]
    assert [r.status for r in results] == ["added"] * len(DOCS), results
    return engine


def _every_chunk_found(engine: Engine) -> int:
    """Each chunk's own text, embedded as a query, finds that chunk first."""
    chunks = [c for d in engine.documents() for c in engine.chunks_of(d.id)]
    for chunk in chunks:
        hits = engine.store.query(engine.embedder.embed_query(chunk.embedding_text), 1)
        assert hits and hits[0][0].id == chunk.id, chunk.id
        assert hits[0][1] > 0.999
    return len(chunks)


def test_switching_embedder_needs_reindex_then_every_chunk_is_found(
    env: Settings,
    tiny_model: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    old_engine = _seed(env)
    total = sum(d.chunk_count for d in old_engine.documents())
    assert total > 10
    monkeypatch.setenv("RAGCHAT_EMBEDDER", str(tiny_model))
    switched = Settings()
    with pytest.raises(IndexMismatchError) as caught:
        build_engine(switched)
    message = str(caught.value)
    assert "sentence-transformers/all-MiniLM-L6-v2" in message and str(tiny_model) in message
    assert "384 dimensions" in message and "32 dimensions" in message
    assert "ragchat reindex" in message
    assert cli.main(["ask", "What glows green?"]) == 1  # the command line says the same
    assert "ragchat reindex" in capsys.readouterr().err
    assert cli.main(["doctor"]) == 1

    capsys.readouterr()
    assert cli.main(["reindex", "--grace", "0"]) == 0
    out = capsys.readouterr().out
    assert f"Re-embedded {total} chunks of {len(DOCS)} documents" in out
    assert "Dropped the old index ragchat " in out

    engine = build_engine(switched)  # starts now
    assert engine.store.dimension == 32
    assert _every_chunk_found(engine) == total
    status = engine.index_status()
    assert status is not None and status.building is None and status.active is not None
    assert status.active.identity.dimension == 32 and status.active.collection != "ragchat"
    # the engine built before the swap (a running server) follows it at its next request
    hits = old_engine.retrieve("tinderfox lamp battery").hits
    assert old_engine.embedder.dimension == 32 and hits
    assert hits[0].chunk.document_name == "gamma.txt"
    assert cli.main(["doctor"]) == 0
    assert cli.main(["reindex"]) == 0 and "Nothing to do" in capsys.readouterr().out


class Killed(RuntimeError):
    """Stands for kill -9 in the middle of a batch."""


def test_a_reindex_that_dies_resumes_where_it_stopped(
    env: Settings, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_engine = _seed(env)
    total = sum(d.chunk_count for d in old_engine.documents())
    switched = env.model_copy(update={"embedder": str(tiny_model)})
    reindexer = build_reindexer(build_engine(switched, check_index=False))
    reindexer.batch_chunks = 4
    written = [0]
    original = Reindexer._write

    def dies_after_two_batches(self: Reindexer, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        if written[0] == 2:
            raise Killed
        written[0] += 1
        original(self, *args, **kwargs)

    monkeypatch.setattr(Reindexer, "_write", dies_after_two_batches)
    with pytest.raises(Killed):
        reindexer.run()
    with pytest.raises(IndexMismatchError, match=r"is under way at \d+ of \d+ chunks; `ragchat"):
        build_engine(switched)  # a start with the new embedder is told what is going on
    indexes = IndexRegistry(old_engine.registry.db)
    building = indexes.building()
    assert building is not None and building.chunks_total == total
    before = building.chunks_done  # two batches written (whole documents, 4 chunks or more)
    assert 0 < before < total
    active = indexes.active()
    assert active is not None and active.collection == "ragchat"  # the old one still answers
    assert old_engine.retrieve("tinderfox lamp battery").hits[0].chunk.document_name == "gamma.txt"
    # a document added meanwhile is in the new index too once it completes
    assert (
        old_engine.ingest_bytes(b"The sandpiper gauge reads low tide.", "delta.txt").status
        == "added"
    )

    monkeypatch.setattr(Reindexer, "_write", original)
    again = build_reindexer(build_engine(switched, check_index=False))
    result = again.run()
    assert result.status == "swapped" and result.resumed
    assert result.chunks == total + 1
    assert result.embedded <= total + 1 - before  # the chunks written before the failure stay
    assert _every_chunk_found(build_engine(switched)) == total + 1


def test_reindex_on_a_chroma_server(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deployment with a `chroma run` server: the new index is a collection of its own on
    the server, the old one is dropped from it after the swap."""
    import chromadb

    from tests.services import chroma_run

    with chroma_run(tmp_path) as url:
        settings = Settings(
            home=tmp_path / "home", chroma_url=url, chunk_size=48, chunk_overlap=0,
            embed_precision="float32", fusion_normalise="max", fusion_alpha=0.9,  # see `env`
        )  # fmt: skip
        old_engine = _seed(settings)
        total = sum(d.chunk_count for d in old_engine.documents())
        switched = settings.model_copy(update={"embedder": str(tiny_model)})
        with pytest.raises(IndexMismatchError):
            build_engine(switched)
        reindexer = build_reindexer(build_engine(switched, check_index=False))
        result = reindexer.run()
        assert result.status == "swapped" and result.chunks == total
        assert [r.collection for r in reindexer.drop_retired()] == ["ragchat"]
        host, port = url.rsplit(":", 1)
        client = chromadb.HttpClient(host=host.split("//")[1], port=int(port))
        names = {c.name for c in client.list_collections()}
        active = IndexRegistry(old_engine.registry.db).active()
        assert active is not None
        assert names == {active.collection, active.collection + "-documents"}
        assert _every_chunk_found(build_engine(switched)) == total
        assert old_engine.retrieve("tinderfox lamp battery").hits[0].chunk.document_name == (
            "gamma.txt"
        )

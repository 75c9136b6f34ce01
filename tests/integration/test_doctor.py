"""`ragchat doctor` finds each way the registry, Chroma store and keyword index can disagree, names
it, exits non-zero, and `ragchat doctor --repair` fixes it (exit 0, a clean check afterwards).

Real default embedder, real Chroma, real BM25 index and SQLite; the damage is done directly to one
store at a time, as a crash, a disk problem or a hand edit would leave it.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from rag_core.config import Settings
from rag_core.db.database import Database
from rag_core.db.registry import DocumentRegistry
from rag_core.ingest.pipeline import LOCK_FILE, IngestPipeline
from rag_core.stores.chroma import ChromaStore
from rag_core.stores.keyword import BM25Index
from webapp import cli

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
UNKNOWN = "f" * 32

DOCS = {
    "alpha.md": "# Alpha\n\nThe quillfeather valve opens at dawn.\n\n"
    + "\n\n".join(f"Alpha paragraph {i}: the quillfeather valve rule {i}." for i in range(40)),
    "beta.md": "# Beta\n\nThe brassmoth engine runs on seawater.\n",
    "gamma.txt": "The tinderfox lamp glows green when the battery is full.\n",
}


@dataclass
class Kb:
    """A small knowledge base on disk, opened in this process."""

    home: Path
    pipeline: IngestPipeline
    store: ChromaStore
    keyword: BM25Index
    registry: DocumentRegistry

    def doc(self, name: str):  # type: ignore[no-untyped-def]
        record = self.registry.by_name(name)
        assert record is not None, name
        return record


@pytest.fixture
def kb(real_embedder, tmp_path: Path) -> Iterator[Kb]:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    settings = Settings(home=home, chunk_size=48, chunk_overlap=0)
    db = Database(settings.db_url)
    db.migrate()
    registry = DocumentRegistry(db)
    store = ChromaStore(path=settings.chroma_path)
    keyword = BM25Index(settings.keyword_path)
    pipeline = IngestPipeline(settings, real_embedder, store, keyword, registry)
    results = pipeline.ingest_many([(t.encode(), n) for n, t in DOCS.items()])
    assert [r.status for r in results] == ["added"] * 3, results
    assert pipeline.check() == []
    yield Kb(home, pipeline, store, keyword, registry)
    keyword.close()
    store.close()
    db.dispose()


def doctor(kb: Kb, monkeypatch: pytest.MonkeyPatch, capsys, *args: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    """Run `ragchat doctor ARGS` (in this process, on the kb's data folder)."""
    for key in list(os.environ):
        if key.startswith("RAGCHAT_") and key != "RAGCHAT_MODEL_CACHE":
            monkeypatch.delenv(key)
    monkeypatch.setenv("RAGCHAT_HOME", str(kb.home))
    capsys.readouterr()
    code = cli.main(["doctor", *args])
    return code, capsys.readouterr().out


def orphan_in_chroma(kb: Kb) -> str:
    chunk = replace(kb.store.chunks_of(kb.doc("beta.md").id)[0], id=f"{UNKNOWN}:x:00000",
                    document_id=UNKNOWN)  # fmt: skip
    kb.store.add([chunk], [[0.1] * 384])
    return f"orphan chunks in the vector store: document {UNKNOWN} is not in the registry"


def orphan_in_keyword(kb: Kb) -> str:
    chunk = replace(kb.store.chunks_of(kb.doc("beta.md").id)[0], id=f"{UNKNOWN}:x:00000",
                    document_id=UNKNOWN)  # fmt: skip
    kb.keyword.add([chunk])
    return f"orphan chunks in the keyword index: document {UNKNOWN} is not in the registry"


def chroma_lost_a_chunk(kb: Kb) -> str:
    alpha = kb.doc("alpha.md")
    assert alpha.chunk_count >= 3
    kb.store.delete_chunks([kb.store.chunks_of(alpha.id)[1].id])
    return (
        f"document alpha.md ({alpha.id}) is ready but 1 of its {alpha.chunk_count} chunks are"
        " missing from the vector store"
    )


def chroma_lost_everything(kb: Kb) -> str:
    beta = kb.doc("beta.md")
    kb.store.delete_document(beta.id)
    return f"document beta.md ({beta.id}) is ready but 1 of its 1 chunks are missing"


def keyword_lost_a_document(kb: Kb) -> str:
    beta = kb.doc("beta.md")
    kb.keyword.delete_document(beta.id)
    return f"document beta.md ({beta.id}): the keyword index lacks 1 of its 1 chunks"


def stray_chunk_in_chroma(kb: Kb) -> str:
    gamma = kb.doc("gamma.txt")
    chunk = kb.store.chunks_of(gamma.id)[0]
    kb.store.add([replace(chunk, id=chunk.id + "-stray", index=7)], [[0.2] * 384])
    return (
        f"document gamma.txt ({gamma.id}) has 1 chunks in the vector store that are not part of"
        " its registered version 1"
    )


def stuck_ingesting(kb: Kb) -> str:
    """A crash after the chunks were written, before the commit."""
    beta = kb.doc("beta.md")
    row = kb.registry.begin("beta.md", "0" * 64, 10, "md", None, replaces_id=beta.id)
    chunk = replace(kb.store.chunks_of(beta.id)[0], id=f"{row.id}:x:00000", document_id=row.id)
    kb.store.add([chunk], [[0.3] * 384])
    kb.keyword.add([chunk])
    return f"document beta.md ({row.id}) version 2 is stuck in state 'ingesting'"


def stuck_deleting(kb: Kb) -> str:
    """A crash in the middle of a delete (or after a replace's commit)."""
    gamma = kb.doc("gamma.txt")
    kb.registry.mark_deleting(gamma.id)
    return f"document gamma.txt ({gamma.id}) version 1 is stuck in state 'deleting'"


DAMAGE: dict[str, Callable[[Kb], str]] = {
    f.__name__: f
    for f in (
        orphan_in_chroma,
        orphan_in_keyword,
        chroma_lost_a_chunk,
        chroma_lost_everything,
        keyword_lost_a_document,
        stray_chunk_in_chroma,
        stuck_ingesting,
        stuck_deleting,
    )
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_doctor_names_each_problem_and_repair_fixes_it(
    kb: Kb, damage: str, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    expected = DAMAGE[damage](kb)
    code, out = doctor(kb, monkeypatch, capsys)
    assert code == 1, out
    assert expected in out, out
    assert "doctor --repair" in out

    code, repaired = doctor(kb, monkeypatch, capsys, "--repair")
    assert code == 0, repaired
    assert "repaired: " in repaired and "OK after repair." in repaired, repaired
    code, out = doctor(kb, monkeypatch, capsys)
    assert (code, out.strip()) == (0, "OK: registry, vector store and keyword index agree."), out

    ready = {r.name: r for r in kb.registry.list()}
    assert not kb.registry.not_ready()
    for record in ready.values():  # every ready document: the same chunk ids in both indexes
        ids = [c.id for c in kb.store.chunks_of(record.id)]
        assert len(ids) == record.chunk_count
        assert sorted(kb.keyword.chunk_ids_of(record.id)) == sorted(ids)
    assert kb.store.document_ids() == kb.keyword.document_ids() == {r.id for r in ready.values()}
    if damage == "keyword_lost_a_document":  # rebuilt from the vector store: findable again
        hits = kb.keyword.search("brassmoth engine seawater", 3)
        assert hits and hits[0][0].startswith(ready["beta.md"].id)
    if damage in ("chroma_lost_a_chunk", "chroma_lost_everything"):  # cannot be rebuilt: gone
        assert set(ready) == set(DOCS) - {"alpha.md" if "a_chunk" in damage else "beta.md"}
        assert "cannot be rebuilt; ingest the file again" in repaired
    if damage == "stuck_deleting":
        assert "gamma.txt" not in ready


def test_doctor_cli_reports_every_problem_at_once(kb: Kb) -> None:
    """All the damage together, through the installed entry point in a fresh process."""
    skip = (chroma_lost_everything, stray_chunk_in_chroma)  # same documents as others
    expected = [f(kb) for f in DAMAGE.values() if f not in skip]
    kb.keyword.close()
    kb.store.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGCHAT_")}
    env["RAGCHAT_HOME"] = str(kb.home)
    run = [sys.executable, "-m", "webapp.cli", "doctor"]
    first = subprocess.run(run, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 1, first.stdout + first.stderr
    for line in expected:
        assert line in first.stdout, (line, first.stdout)
    fixed = subprocess.run([*run, "--repair"], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=120)  # fmt: skip
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "OK after repair." in fixed.stdout
    again = subprocess.run(run, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and again.stdout.startswith("OK:"), again.stdout + again.stderr


def test_recovery_waits_for_a_live_writer_in_another_process(kb: Kb) -> None:
    """A row left 'ingesting' by a process that still holds the lock is not rolled back."""
    row = kb.registry.begin("live.md", "1" * 64, 10, "md", None)
    fd = os.open(kb.home / LOCK_FILE, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # this descriptor plays the other process
        assert kb.pipeline.recover(wait=False) == []
        assert [r.id for r in kb.registry.not_ready()] == [row.id]
    finally:
        os.close(fd)
    actions = kb.pipeline.recover(wait=False)
    assert any(row.id in a and "interrupted ingest" in a for a in actions), actions
    assert kb.registry.not_ready() == []


def test_replica_leaves_another_replicas_live_ingest_alone(kb: Kb) -> None:
    """With a shared Chroma server the local lock proves nothing about other hosts: an unfinished
    ingest that is still making progress (within the lease) is neither undone nor reported, and
    its chunks are not swept as orphans; once idle past the lease it is undone as abandoned."""
    import sqlalchemy as sa

    from rag_core.db.models import DocumentRow

    expected = stuck_ingesting(kb)
    row = kb.registry.not_ready()[0]
    shared = kb.pipeline.settings.model_copy(
        update={"chroma_url": "http://chroma.invalid:8000", "shared_lease_s": 600.0}
    )
    replica = IngestPipeline(shared, kb.pipeline.embedder, kb.store, kb.keyword, kb.registry)
    assert replica.recover() == []
    assert replica.check() == []
    assert row.id in kb.store.document_ids() and row.id in kb.keyword.document_ids()

    kb.registry.touch([row.id])  # progress keeps it alive; then it goes quiet past the lease
    with kb.registry.db.session() as s:
        year_ago = row.added_at.replace(year=row.added_at.year - 1)
        s.execute(
            sa.update(DocumentRow).where(DocumentRow.id == row.id).values(updated_at=year_ago)
        )
    assert any(expected in p for p in replica.check())
    actions = replica.recover()
    assert len(actions) == 1 and "interrupted ingest of beta.md" in actions[0]
    assert kb.registry.not_ready() == [] and replica.check() == []
    assert row.id not in kb.store.document_ids() | kb.keyword.document_ids()

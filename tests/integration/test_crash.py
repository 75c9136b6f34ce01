"""kill -9 during ingest, replace and delete, many times: after a restart the registry, the Chroma
store and the keyword index agree, nothing deleted or replaced is retrievable, and `ragchat doctor`
reports clean; running the ingest again completes the set.

Each run is the real `ragchat` command line (webapp.cli.main) in a process of its own, with the
real default embedder, real Chroma, BM25 index and SQLite. To keep many kills affordable the
processes are forked from one "zygote" that has imported the heavy libraries once (no model is
loaded and no thread started before the fork). A kill lands at a random moment: either the test
kills the process after a random delay, or the process kills itself (SIGKILL, never a clean exit)
a random few milliseconds into, or right after, a chosen step of the write path: registering,
embedding, writing Chroma, writing the keyword index, committing, purging a replaced version's
chunks and rows, and deleting. Chunks are written 16 at a time, so a long document takes several
batches. The seed is printed; RAGCHAT_CRASH_SEED reruns a sequence.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rag_core.config import Settings
from rag_core.db.database import Database
from rag_core.db.log import ConversationLog
from rag_core.db.registry import DocumentRegistry
from rag_core.engine import Engine
from rag_core.factory import compose_engine
from rag_core.stores.chroma import ChromaStore
from rag_core.stores.keyword import BM25Index
from rag_core.testing import FakeGenerator, fake_engine

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

# Where a process may kill itself: module, class, method of the real write path.
STEPS = {
    "register": ("rag_core.db.registry", "DocumentRegistry", "begin"),
    "embed": ("rag_core.embedders.sentence_transformers", "SentenceTransformerEmbedder",
              "embed_documents"),
    "chroma-write": ("rag_core.stores.chroma", "ChromaStore", "add"),
    "keyword-write": ("rag_core.stores.keyword", "BM25Index", "add"),
    "commit": ("rag_core.db.registry", "DocumentRegistry", "commit"),
    "mark-deleting": ("rag_core.db.registry", "DocumentRegistry", "mark_deleting"),
    "purge-vector": ("rag_core.stores.chroma", "ChromaStore", "delete_document"),
    "purge-keyword": ("rag_core.stores.keyword", "BM25Index", "delete_document"),
    "purge-row": ("rag_core.db.registry", "DocumentRegistry", "remove"),
    "retrieve": ("rag_core.retrieval", "Retriever", "search"),
    "log-turn": ("rag_core.db.log", "ConversationLog", "record_turn"),
}  # fmt: skip

ZYGOTE = r"""
import importlib, json, os, signal, sys, threading
import torch, transformers, sentence_transformers, chromadb, sqlalchemy, alembic  # imported once
import webapp.cli, rag_core.factory, rag_core.engine, rag_core.stores.chroma
import rag_core.stores.keyword, rag_core.embedders.sentence_transformers, rag_core.ingest.pipeline

# small write batches: the long manual (~100 chunks) is written in several, so kills land between
# and inside the batches of one document as well as between documents
rag_core.ingest.pipeline.IngestPipeline.batch_chunks = 16

def install(kill):
    module, cls, attr = kill["target"]
    owner = getattr(importlib.import_module(module), cls)
    original = getattr(owner, attr)
    calls = [0]

    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] != kill["nth"]:
            return original(*args, **kwargs)
        if kill["mode"] == "during":  # a random moment inside the step
            threading.Timer(kill["delay"], os.kill, (os.getpid(), signal.SIGKILL)).start()
            return original(*args, **kwargs)
        result = original(*args, **kwargs)  # right after the step, before the next one
        os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, attr, wrapper)

print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        out = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.environ.update(job["env"])
        if job.get("kill"):
            install(job["kill"])
        try:
            code = webapp.cli.main(job["argv"])
        except BaseException as exc:
            print("crashed:", repr(exc), flush=True)
            code = 99
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    print(json.dumps({"pid": pid}), flush=True)
    _, status = os.waitpid(pid, 0)
    killed = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
    print(json.dumps({"pid": pid, "signal": killed, "code": code}), flush=True)
"""


@dataclass
class Run:
    signal: int | None
    code: int | None
    output: str


class Zygote:
    """A process that has imported ragchat's libraries and forks one child per command."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.logs = logs
        self.count = 0
        self.proc = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE], cwd=ROOT, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self._next(120).get("ready")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.lines.put(json.loads(line))

    def _next(self, timeout: float) -> dict[str, Any]:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no answer from the zygote in {timeout} s") from None

    def run(
        self,
        argv: list[str],
        *,
        kill: dict[str, Any] | None = None,
        kill_after: float | None = None,
        timeout: float = 180,
    ) -> Run:
        """Run `ragchat ARGV` in a forked child; `kill_after` seconds: SIGKILL it from here."""
        self.count += 1
        log = self.logs / f"run{self.count:03d}.log"
        job = {"argv": argv, "env": {}, "kill": kill, "log": str(log)}
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        pid = self._next(30)["pid"]
        if kill_after is not None:
            try:
                end = self.lines.get(timeout=kill_after)
            except queue.Empty:
                os.kill(pid, signal.SIGKILL)
                end = self._next(timeout)
        else:
            end = self._next(timeout)
        assert end["pid"] == pid
        return Run(end["signal"], end["code"], log.read_text(errors="replace"))

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def token(i: int, version: int) -> str:
    return f"zq{i:03d}v{version}"


def document(i: int, version: int) -> str:
    words = ["amber", "basalt", "cobalt", "delta", "ember", "fjord", "granite", "harbor"]
    w = words[i % len(words)]
    paragraphs = [
        f"# Record {i}",
        f"Marker {token(i, version)} identifies record {i}, version {version}, of the {w} set.",
        f"The {w} gauge number {i} reads {i * 7 + version} units after calibration {version}.",
        f"Inspectors log the {w} valve {i} twice a week and note every leak in the ledger.",
    ]
    return "\n\n".join(paragraphs) + "\n"


def big_document(version: int) -> str:
    lines = [f"# Manual\n\nMarker {token(900, version)} opens the long manual."]
    for n in range(90):
        lines.append(
            f"Section {n}: the turbine blade {n} is inspected every {n + 3} days for cracks,"
            f" and its bearing {n} is greased with compound {n % 7} after each inspection."
        )
    return "\n\n".join(lines) + "\n"


@dataclass
class Corpus:
    """The files on disk and every version ever written (name -> {content hash: token})."""

    folder: Path
    versions: dict[str, dict[str, str]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    was_ready: set[str] = field(default_factory=set)  # tokens seen in a ready document
    checked_gone: set[str] = field(default_factory=set)  # checked unretrievable after recovery

    def write(self, name: str, text: str, tok: str) -> None:
        data = text.encode()
        (self.folder / name).write_bytes(data)
        self.versions.setdefault(name, {})[hashlib.sha256(data).hexdigest()] = tok

    def current(self) -> dict[str, str]:
        """name -> content hash of the file now on disk."""
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in self.folder.iterdir()}


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Zygote, Settings, Corpus]]:
    home = tmp_path / "home"
    folder = tmp_path / "docs"
    folder.mkdir()
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGCHAT_")}
    if "RAGCHAT_MODEL_CACHE" in os.environ:
        env["RAGCHAT_MODEL_CACHE"] = os.environ["RAGCHAT_MODEL_CACHE"]
    env.update(
        RAGCHAT_HOME=str(home),
        RAGCHAT_CHUNK_SIZE="48",
        RAGCHAT_CHUNK_OVERLAP="0",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        ANONYMIZED_TELEMETRY="False",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
    )
    zygote = Zygote(env, logs)
    try:
        yield zygote, Settings(home=home, chunk_size=48, chunk_overlap=0), Corpus(folder)
    finally:
        zygote.close()


def verify(
    settings: Settings, corpus: Corpus, embedder: Any, *, recovered: bool, final: bool = False
) -> set[str]:
    """Assert the invariants; returns the names of the ready documents.

    Before recovery a crash may leave unfinished rows and their chunks, but retrieval must
    already return only chunks of ready documents. After recovery the three stores must agree
    exactly.
    """
    db = Database(settings.db_url)
    store = ChromaStore(path=settings.chroma_path)
    keyword = BM25Index(settings.keyword_path)
    try:
        engine = compose_engine(
            settings,
            db=db,
            embedder=embedder,
            store=store,
            keyword=keyword,
            generator=FakeGenerator(),
        )
        registry = engine.registry
        ready = registry.list()
        by_name: dict[str, list[Any]] = {}
        for r in ready:
            by_name.setdefault(r.name, []).append(r)
        for name, records in by_name.items():  # one live version per name, a known one
            assert len(records) == 1, f"{name}: {len(records)} ready versions"
            assert records[0].content_hash in corpus.versions[name], name
            assert name not in corpus.deleted, f"{name} was deleted but is ready"
        ready_tokens = {corpus.versions[r.name][r.content_hash] for r in ready}
        stored = " ".join(c.text for d in store.document_ids() for c in store.chunks_of(d))
        written = {t for v in corpus.versions.values() for t in v.values() if t in stored}
        gone = (written | corpus.was_ready) - ready_tokens
        corpus.was_ready |= ready_tokens
        query = sorted(gone if final else gone - corpus.checked_gone)  # new ones, all at the end
        if recovered:
            corpus.checked_gone = gone
        ready_ids = {r.id for r in ready}
        sample = random.Random(len(corpus.was_ready)).sample(sorted(ready_tokens),
                                                              min(2, len(ready_tokens)))  # fmt: skip
        for tok in query + sample:  # deleted, replaced or unfinished: never retrieved
            hits = engine.retriever.search(tok, mode="hybrid", k=40).hits
            assert all(h.chunk.document_id in ready_ids for h in hits)
            found = any(tok in h.chunk.text for h in hits)
            assert found == (tok in ready_tokens), (tok, "retrievable" if found else "missing")
        if recovered:
            assert registry.not_ready() == []
            problems = engine.pipeline.check()
            assert problems == [], problems
            assert store.document_ids() == keyword.document_ids() == ready_ids
            for r in ready:
                ids = sorted(c.id for c in store.chunks_of(r.id))
                assert len(ids) == r.chunk_count > 0, r.name
                assert sorted(keyword.chunk_ids_of(r.id)) == ids, r.name
        return set(by_name)
    finally:
        keyword.close()
        store.close()
        db.dispose()


def test_kill_minus_nine_at_random_moments(setup, real_embedder) -> None:  # type: ignore[no-untyped-def]
    zygote, settings, corpus = setup
    seed = int(os.environ.get("RAGCHAT_CRASH_SEED", random.randrange(1 << 30)))
    print(f"crash test seed: {seed} (rerun with RAGCHAT_CRASH_SEED={seed})")
    rng = random.Random(seed)
    n_docs = 0

    def add_files(n: int) -> None:  # every ingest run gets new files to work on
        nonlocal n_docs
        for i in range(n_docs, n_docs + n):
            corpus.write(f"doc{i:02d}.md", document(i, 1), token(i, 1))
        n_docs += n

    corpus.write("a_big.md", big_document(1), token(900, 1))
    started = time.monotonic()
    kills: list[str] = []

    def crash(argv: list[str], step: str, nth: int) -> None:
        t0 = time.monotonic()
        if step == "external":
            run = zygote.run(argv, kill_after=rng.uniform(0.4, 1.6))
        else:
            during = rng.random() < 0.6
            kill = {"target": STEPS[step], "nth": nth, "mode": "during" if during else "after",
                    "delay": rng.uniform(0.0, 0.06)}  # fmt: skip
            run = zygote.run(argv, kill=kill)
        where = f"{step}#{nth}"
        if run.signal == signal.SIGKILL:
            kills.append(where)
        else:  # the step was never reached, or finished before the timer: a clean run
            assert run.code in (0, 1), (where, run.output[-3000:])
        t1 = time.monotonic()
        verify(settings, corpus, real_embedder, recovered=False)
        t2 = time.monotonic()
        restart = zygote.run(["docs", "list"])  # a command's start-up recovers
        assert restart.code == 0, restart.output[-3000:]
        t3 = time.monotonic()
        if len(kills) % 3 == 0:  # `ragchat doctor` itself now and then; check() every time
            doctor = zygote.run(["doctor"])
            assert doctor.code == 0 and "OK:" in doctor.output, (where, doctor.output[-3000:])
        t4 = time.monotonic()
        verify(settings, corpus, real_embedder, recovered=True)
        print(f"  {argv[0]} {where}: {'killed' if run.signal else f'exit {run.code}'}"
              f" run {t1 - t0:.1f}s verify {t2 - t1:.1f}s restart {t3 - t2:.1f}s"
              f" doctor {t4 - t3:.1f}s verify {time.monotonic() - t4:.1f}s")  # fmt: skip

    ingest = ["ingest", "-q", str(corpus.folder)]
    # 1. the first ingest of the folder, killed in every step of the write path
    for step in ["register", "embed", "chroma-write", "keyword-write", "commit", "external",
                 "chroma-write", "embed"]:  # fmt: skip
        add_files(3)
        crash(ingest, step, rng.randint(1, 3))
    # 2. new versions of some files replace the old ones (the big one first)
    corpus.write("a_big.md", big_document(2), token(900, 2))
    version = 2
    for step in ["commit", "purge-vector", "purge-keyword", "purge-row", "chroma-write"]:
        for i in rng.sample(range(n_docs), 2):
            corpus.write(f"doc{i:02d}.md", document(i, version), token(i, version))
        version += 1
        crash(ingest, step, 1)
    done = zygote.run(ingest)
    assert done.code == 0, done.output[-3000:]
    # 3. deletions
    for step in ["mark-deleting", "purge-vector", "purge-keyword", "purge-row"]:
        names = verify(settings, corpus, real_embedder, recovered=True) - corpus.deleted
        name = rng.choice(sorted(names - {"a_big.md"}))
        (corpus.folder / name).unlink()
        run = zygote.run(["docs", "delete", name], kill={"target": STEPS[step], "nth": 1,
                         "mode": "after" if step != "purge-vector" else "during", "delay": 0.0})  # fmt: skip
        assert run.signal == signal.SIGKILL, run.output[-2000:]
        kills.append(f"delete:{step}")
        print(f"  delete {name} {step}: killed")
        restart = zygote.run(["docs", "list"])
        assert restart.code == 0, restart.output[-3000:]
        listed = [line.split()[1] for line in restart.output.splitlines() if line[:1].isalnum()]
        assert name not in listed, restart.output  # the deletion was finished
        corpus.deleted.add(name)
        assert zygote.run(["doctor"]).code == 0
        verify(settings, corpus, real_embedder, recovered=True)

    assert len(kills) >= 12, kills
    # 4. running the ingest again completes the set: every file on disk, in its current version
    final = zygote.run(ingest)
    assert final.code == 0, final.output[-3000:]
    names = verify(settings, corpus, real_embedder, recovered=True, final=True)
    assert names == set(corpus.current())
    db = Database(settings.db_url)
    try:
        ready = {r.name: r.content_hash for r in DocumentRegistry(db).list()}
    finally:
        db.dispose()
    assert ready == corpus.current()
    # 5. killed mid-answer: the turn is written in one transaction when the answer ends, so it is
    # either complete (with its passages and sentence verdicts) or absent; never half written.
    for step, mode in [("retrieve", "after"), ("log-turn", "during"), ("log-turn", "during")]:
        kill = {"target": STEPS[step], "nth": 1, "mode": mode, "delay": rng.uniform(0, 0.01)}
        run = zygote.run(["ask", "--extractive", "What does the amber gauge read?"], kill=kill)
        kills.append(f"ask:{step}" if run.signal else f"ask:{step}(finished)")
    db = Database(settings.db_url)
    try:
        log = ConversationLog(db)
        conversations = log.list_conversations("local")
        assert len(conversations) == 3
        turns = [t for c in conversations for t in log.turns(c.id, "local")]
        assert len(turns) <= 2
        for t in turns:
            assert t.status == "complete" and t.answer and len(t.hits) > 0, t
    finally:
        db.dispose()
    print(f"{len(kills)} kills ({', '.join(kills)}) in {time.monotonic() - started:.0f} s")


# ---------------------------------------------------------------------------------------------
# A generation that is stopped or fails leaves a complete, marked turn in the log.

PUMP = (
    "The Vexel pump moves 40 litres of water per minute. It must be serviced every six months "
    "by a certified technician. The pump housing is made of stainless steel and the impeller "
    "of bronze. A red light on the panel means the filter needs cleaning."
)


class FailingGenerator:
    """Streams a few real-looking tokens, then raises an unexpected error (not GenerationError)."""

    name = "failing"

    def stream(self, messages: Any, *, max_new_tokens: int, temperature: float = 0.0,
               stop: Any = None) -> Iterator[str]:  # fmt: skip
        yield from ["The Vexel pump ", "moves 40 litres ", "of water"]
        raise RuntimeError("the accelerator fell off the bus")

    def count_tokens(self, text: str) -> int:
        return len(text.split())


def _engine(home: Path, embedder: Any, generator: Any) -> Engine:
    settings = Settings(home=home, max_new_tokens=48, answer_strategy="concat")
    store = ChromaStore(path=settings.chroma_path)
    engine = fake_engine(settings, embedder=embedder, store=store, generator=generator)
    assert engine.ingest_bytes(PUMP.encode(), "pump.txt").status == "added"
    return engine


def _logged_turn(engine: Engine) -> Any:
    (conv,) = engine.log.list_conversations("local")
    (turn,) = engine.log.turns(conv.id, "local")
    return turn


def test_stopped_generation_is_logged_with_its_partial_text(  # type: ignore[no-untyped-def]
    real_embedder, real_generator, tmp_path
) -> None:
    """The real generator, stopped by the user after three tokens."""
    from rag_core.types import Done, Logged, Retrieved, Token

    engine = _engine(tmp_path, real_embedder, real_generator)
    stop = threading.Event()
    events, tokens = [], []
    for event in engine.chat("How many litres per minute does the Vexel pump move?", stop=stop):
        events.append(event)
        if isinstance(event, Token):
            tokens.append(event.text)
            if len(tokens) == 3:
                stop.set()
    retrieved = next(e for e in events if isinstance(e, Retrieved))
    assert not retrieved.refused
    done = next(e for e in events if isinstance(e, Done))
    assert isinstance(events[-1], Logged)
    assert done.status == "stopped"
    turn = _logged_turn(engine)
    assert turn.status == "stopped"
    assert turn.raw_answer == done.raw_answer == "".join(tokens)  # exactly what was streamed
    assert 3 <= real_generator.count_tokens(turn.raw_answer) < 48
    assert [h.chunk.id for h in turn.hits] == [h.chunk.id for h in retrieved.hits]


def test_client_gone_mid_answer_is_logged_as_stopped(  # type: ignore[no-untyped-def]
    real_embedder, real_generator, tmp_path
) -> None:
    """The consumer closes the stream (a browser tab closed): the turn is still written."""
    from rag_core.types import Token

    engine = _engine(tmp_path, real_embedder, real_generator)
    stream = engine.chat("How many litres per minute does the Vexel pump move?")
    streamed = ""
    for event in stream:
        if isinstance(event, Token):
            streamed += event.text
            if len(streamed.split()) >= 2:
                break
    stream.close()
    turn = _logged_turn(engine)
    assert turn.status == "stopped"
    assert turn.raw_answer.startswith(streamed) and turn.hits


@pytest.mark.parametrize("kind", ["generation-error", "unexpected"])
def test_failed_generation_is_logged_as_error(real_embedder, tmp_path, kind: str) -> None:  # type: ignore[no-untyped-def]
    """A generator that fails mid-stream: the turn is logged 'error' with the partial text."""
    from rag_core.types import Done, Token

    reply = "The Vexel pump moves 40 litres of water per minute [1]. It is serviced twice a year."
    generator = FakeGenerator(reply, fail_after=4) if kind == "generation-error" else (
        FailingGenerator())  # fmt: skip
    engine = _engine(tmp_path, real_embedder, generator)
    events: list[Any] = []
    question = "How many litres per minute does the Vexel pump move?"
    if kind == "unexpected":
        with pytest.raises(RuntimeError, match="fell off the bus"):
            for event in engine.chat(question):
                events.append(event)
    else:
        events = list(engine.chat(question))
        assert next(e for e in events if isinstance(e, Done)).status == "error"
    streamed = "".join(e.text for e in events if isinstance(e, Token))
    turn = _logged_turn(engine)
    assert turn.status == "error" and turn.error
    assert turn.raw_answer == streamed and streamed.startswith("The Vexel pump")
    assert turn.hits and any("Vexel" in h.chunk.text for h in turn.hits)
    assert turn.answer  # what the user saw (the partial text, or the error message)

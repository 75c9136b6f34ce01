from collections.abc import Sequence

import pytest

from rag_core.retrieval import FusionParams, content_words, fuse, standalone_query, z_scores
from rag_core.types import Chunk, Turn


def chunk(cid: str, doc: str = "d1") -> Chunk:
    return Chunk(cid, doc, doc, "v", 0, f"text {cid}", 0, 6)


def test_rrf_rewards_agreement_and_keeps_each_retrievers_rank() -> None:
    a, b, c = chunk("a"), chunk("b"), chunk("c")
    dense = [(a, 0.9), (b, 0.8)]
    keyword = [("c", 12.0), ("b", 7.0)]
    store = {"c": c}
    hits = fuse(
        dense, keyword, lambda ids: [store[i] for i in ids if i in store], {"d1"}, k=3,
        mode="hybrid", params=FusionParams("rrf", rrf_k=60, dense_weight=1.0, keyword_weight=1.0),
    )  # fmt: skip
    assert [h.chunk.id for h in hits] == ["b", "a", "c"]
    b_hit = hits[0]
    assert (b_hit.dense_rank, b_hit.keyword_rank, b_hit.found_by) == (2, 2, "both")
    assert hits[1].found_by == "dense" and hits[2].found_by == "keyword"
    assert [h.rank for h in hits] == [1, 2, 3]


def test_fusion_weights_shift_the_order() -> None:
    a, c = chunk("a"), chunk("c")
    params = FusionParams("rrf", rrf_k=60, dense_weight=1.0, keyword_weight=0.5)
    hits = fuse(
        [(a, 0.9)], [("c", 3.0)], lambda ids: [c], {"d1"}, k=2, mode="hybrid", params=params
    )
    assert [h.chunk.id for h in hits] == ["a", "c"]


def test_chunks_of_documents_not_ready_are_never_returned() -> None:
    a, gone = chunk("a"), chunk("x", doc="deleted")
    hits = fuse(
        [(a, 0.5)], [("x", 9.0)], lambda ids: [gone], {"d1"}, k=5, mode="hybrid",
        params=FusionParams(),
    )  # fmt: skip
    assert [h.chunk.id for h in hits] == ["a"]


def test_z_normalised_fusion_mixes_each_retrievers_z_scores() -> None:
    a, b, c, d = chunk("a"), chunk("b"), chunk("c"), chunk("d")
    dense = [(a, 0.9), (b, 0.6), (c, 0.3)]  # d only by BM25: the dense floor, 0.3
    keyword = [("d", 30.0), ("b", 10.0)]  # a and c not by BM25: BM25's mean, z = 0
    store = {"d": d}
    params = FusionParams("convex", alpha=0.6, normalise="z")
    hits = fuse(dense, keyword, lambda ids: [store[i] for i in ids], {"d1"}, k=4,
                mode="hybrid", params=params)  # fmt: skip
    on_d = {"a": 0.9, "b": 0.6, "c": 0.3, "d": 0.3}
    mean = sum(on_d.values()) / 4
    std = (sum((x - mean) ** 2 for x in on_d.values()) / 4) ** 0.5
    z_kw = {"d": 1.0, "b": -1.0}  # two scores: +-1 standard deviation
    expected = {cid: 0.6 * (x - mean) / std + 0.4 * z_kw.get(cid, 0.0) for cid, x in on_d.items()}
    assert {h.chunk.id: h.score for h in hits} == pytest.approx(expected)
    assert [h.chunk.id for h in hits] == sorted(expected, key=lambda cid: -expected[cid])
    # a scale change of one retriever's scores changes nothing under z (it does under 'max')
    scaled = fuse([(x, s * 10) for x, s in dense], keyword, lambda ids: [store[i] for i in ids],
                  {"d1"}, k=4, mode="hybrid", params=params)  # fmt: skip
    assert [h.chunk.id for h in scaled] == [h.chunk.id for h in hits]
    assert [h.dense_score for h in hits][:1] == [0.9]  # hits keep the raw similarity


def test_z_scores_of_equal_values_are_zero() -> None:
    assert z_scores({"a": 2.0, "b": 2.0}) == {"a": 0.0, "b": 0.0}
    assert z_scores({}) == {}


def test_single_modes_keep_raw_scores() -> None:
    a = chunk("a")
    dense_hits = fuse(
        [(a, 0.7)], [], lambda ids: [], {"d1"}, k=5, mode="dense", params=FusionParams()
    )
    assert dense_hits[0].score == 0.7
    kw_hits = fuse(
        [], [("a", 4.2)], lambda ids: [a], {"d1"}, k=5, mode="bm25", params=FusionParams()
    )
    assert kw_hits[0].score == 4.2 and kw_hits[0].found_by == "keyword"


def test_follow_up_question_gets_the_topic_of_the_previous_one() -> None:
    history = [Turn("What is the maximum upload size of Acme Cloud?", "2 GB [1]")]
    q = standalone_query("And what about its page size?", history)
    assert "Acme" in q and "upload" in q and q.endswith("And what about its page size?")


def test_self_contained_question_is_left_alone() -> None:
    history = [Turn("How long does the Lumen L2 battery last on a full charge?", "14 hours [1].")]
    standalone = [
        "How many regions does the Zorblax reactor network operate in?",
        "What is the capital of Australia?",
        "Who commissioned the Zorblax reactor?",
        "Is it safe to use Python's eval function on user input?",
        "How do I install the Quarnet turbine firmware?",
        "What colour is the charging ring when the battery is full?",
    ]
    for q in standalone:
        assert standalone_query(q, history) == q, q
    assert standalone_query("anything", []) == "anything"


def test_questions_that_depend_on_the_conversation_are_rewritten() -> None:
    history = [Turn("How long does the Lumen L2 battery last on a full charge?", "14 hours [1].")]
    for q in ("And at full brightness?", "Who designed it?", "What about its warranty?",
              "The price?", "How heavy is it?"):  # fmt: skip
        rewritten = standalone_query(q, history)
        assert rewritten.endswith(q) and "Lumen" in rewritten, (q, rewritten)


def test_content_words_drop_stop_words_and_duplicates() -> None:
    assert content_words("What is the refund window of the annual plan plan?") == [
        "refund", "window", "annual", "plan",
    ]  # fmt: skip


def test_convex_fusion_mixes_cosine_with_normalised_bm25() -> None:
    a, b, c = chunk("a"), chunk("b"), chunk("c")
    dense = [(a, 0.80), (b, 0.78)]
    keyword = [("b", 10.0), ("c", 8.0)]
    store = {"c": c}
    hits = fuse(
        dense, keyword, lambda ids: [store[i] for i in ids if i in store], {"d1"}, k=3,
        mode="hybrid", params=FusionParams("convex", alpha=0.85),
    )  # fmt: skip
    scores = {h.chunk.id: round(h.score, 4) for h in hits}
    assert scores == {
        "b": round(0.85 * 0.78 + 0.15 * 1.0, 4),
        "a": round(0.85 * 0.80, 4),
        "c": round(0.85 * 0.78 + 0.15 * 0.8, 4),  # dense floor: the lowest dense candidate
    }
    assert [h.chunk.id for h in hits] == ["b", "c", "a"]


def test_term_stats_give_unknown_terms_df_zero_and_the_highest_idf() -> None:
    from rag_core.retrieval import Retriever
    from rag_core.stores.keyword import BM25Index
    from rag_core.testing import FakeEmbedder, InMemoryStore

    texts = [
        "Use json.loads to parse a JSON document.",
        "The json module reads and writes JSON.",
        "Sort a list with sorted() or list.sort().",
    ]
    chunks = [Chunk(f"c{i}", "d1", "doc", "v", i, t, 0, len(t)) for i, t in enumerate(texts)]
    embedder, store, keyword = FakeEmbedder(), InMemoryStore(), BM25Index()
    store.add(chunks, embedder.embed_documents(texts))
    keyword.add(chunks)
    retriever = Retriever(embedder, store, keyword, lambda: {"d1"})
    stats = {t.term: t for t in retriever.term_stats("What does json.loads_fast return for JSON?")}
    assert stats["json"].df == 2 and stats["return"].df == 0
    # a whole identifier counts only where a chunk holds it whole, although its parts occur
    assert stats["json.loads_fast"].df == 0 and stats["load"].df == 1
    assert stats["json.loads_fast"].idf == stats["return"].idf > stats["load"].idf
    assert stats["load"].idf > stats["json"].idf
    assert {t.term: t.df for t in retriever.term_stats("parse with json.loads")}["json.loads"] == 1


def test_term_stats_of_a_scoped_question_count_only_the_scope() -> None:
    """A term that only documents outside the scope hold is unknown to a scoped question (the
    refusal gate's `known` share), and idf is over the scope's chunks."""
    from rag_core.retrieval import Retriever
    from rag_core.stores.keyword import BM25Index
    from rag_core.testing import FakeEmbedder, InMemoryStore

    texts = {
        "d1": ["The Zorblat budget is 4 million euros.", "Budgets are set in May."],
        "d2": ["The coffee machine is descaled on Fridays."],
    }
    chunks = [
        Chunk(f"{d}-{i}", d, d, "v", i, t, 0, len(t))
        for d, ts in texts.items()
        for i, t in enumerate(ts)
    ]
    embedder, store, keyword = FakeEmbedder(), InMemoryStore(), BM25Index()
    store.add(chunks, embedder.embed_documents([c.text for c in chunks]))
    keyword.add(chunks)
    retriever = Retriever(embedder, store, keyword, lambda: {"d1", "d2"})
    question = "What is the Zorblat budget?"
    everywhere = {t.term: t for t in retriever.term_stats(question)}
    scoped = {t.term: t for t in retriever.term_stats(question, document_ids=["d2"])}
    assert everywhere["zorblat"].df == 1 and scoped["zorblat"].df == 0
    assert scoped["zorblat"].idf == scoped["budget"].idf  # both unknown among d2's 1 chunk
    assert everywhere["budget"].df == 2
    whole = {t.term: t for t in retriever.term_stats(question, document_ids=["d1", "d2"])}
    assert whole == everywhere  # a scope holding every document is no scope
    assert retriever.term_stats(question, document_ids=["gone"]) == []


def test_term_stats_look_terms_up_by_their_source_word() -> None:
    """ "greased" stems to "greas", which stems again to "grea": looking the stem up in the index
    would find nothing and make a word of the documents count as unknown to the refusal gate."""
    from rag_core.retrieval import Retriever
    from rag_core.stores.keyword import BM25Index
    from rag_core.stores.tokenize import terms_with_sources, tokenize
    from rag_core.testing import FakeEmbedder, InMemoryStore

    assert tokenize("greased") == ["greas"] and tokenize("greas") != ["greas"]
    assert terms_with_sources("Greased os.path") == [
        ("greas", "greased"), ("os.path", "os.path"), ("os", "os"), ("path", "path")
    ]  # fmt: skip
    text = "The bearings must be greased every 900 operating hours."
    chunk = Chunk("c0", "d1", "doc", "v", 0, text, 0, len(text))
    embedder, store, keyword = FakeEmbedder(), InMemoryStore(), BM25Index()
    store.add([chunk], embedder.embed_documents([text]))
    keyword.add([chunk])
    retriever = Retriever(embedder, store, keyword, lambda: {"d1"})
    stats = {t.term: t.df for t in retriever.term_stats("How often are the bearings greased?")}
    assert stats == {"often": 0, "bear": 1, "greas": 1}


def test_section_openings_get_the_bonus_in_ranking() -> None:
    from rag_core.retrieval import Retriever
    from rag_core.stores.keyword import BM25Index
    from rag_core.testing import FakeEmbedder, InMemoryStore

    def make(i: int, heading: str, text: str) -> Chunk:
        return Chunk(
            f"d1:v:{i:05d}", "d1", "guide.md", "v", i, text, 0, len(text), None, None, (heading,)
        )

    chunks = [
        make(0, "Install", "Install the lamp on a desk."),
        make(1, "Install", "Charge the lamp battery before first use."),
        make(2, "Battery", "The lamp battery lasts 14 hours."),
        make(3, "Battery", "Charge the lamp battery with USB-C."),
    ]
    embedder, store = FakeEmbedder(), InMemoryStore()
    store.add(chunks, embedder.embed_documents([c.embedding_text for c in chunks]))
    retriever = Retriever(
        embedder, store, BM25Index(), lambda: {"d1"}, FusionParams(section_bonus=0.5)
    )
    assert retriever.section_openings(chunks) == {"d1:v:00000", "d1:v:00002"}
    plain = Retriever(embedder, store, BM25Index(), lambda: {"d1"})
    query = "charge the lamp battery"
    before = plain.search(query, mode="dense", k=4).hits
    after = retriever.search(query, mode="dense", k=4).hits
    assert before[0].chunk.id in {"d1:v:00001", "d1:v:00003"}  # an exact copy wins without it
    assert after[0].chunk.id in {"d1:v:00000", "d1:v:00002"}
    # the hits keep the raw similarity; only the ranking score carries the bonus
    top = next(h for h in after if h.chunk.id == after[0].chunk.id)
    assert top.score == pytest.approx(top.dense_score + 0.5)


def test_length_penalty_corrects_the_best_of_many_chunks() -> None:
    import math

    from rag_core.retrieval import LENGTH_PENALTY_CAP, Retriever
    from rag_core.stores.keyword import BM25Index
    from rag_core.testing import FakeEmbedder, InMemoryStore

    def make(doc: str, i: int, text: str) -> Chunk:
        return Chunk(f"{doc}:v:{i:05d}", doc, f"{doc}.md", "v", i, text, 0, len(text))

    note = make("note", 0, "Charge the lamp battery with USB-C.")
    manual = [make("manual", i, "Charge the lamp battery with USB-C.") for i in range(3)]
    embedder, store = FakeEmbedder(), InMemoryStore()
    store.add([note, *manual], embedder.embed_documents([c.text for c in [note, *manual]]))
    sizes = {"note": 1, "manual": 40}
    penalised = Retriever(
        embedder, store, BM25Index(), lambda: sizes, FusionParams(length_penalty=0.02)
    )
    hits = penalised.search("charge the lamp battery", mode="dense", k=4).hits
    assert hits[0].chunk.document_id == "note"  # same similarity: the short document first
    long_hit = hits[1]
    assert long_hit.dense_score is not None
    # capped: 40 chunks cost what LENGTH_PENALTY_CAP chunks cost; the raw similarity is kept
    expected = long_hit.dense_score - 0.02 * math.log(LENGTH_PENALTY_CAP)
    assert long_hit.score == pytest.approx(expected)
    assert hits[0].score == pytest.approx(hits[0].dense_score)
    # without chunk counts (a plain set of ready ids) or with the setting at 0 there is none
    for retriever in (
        Retriever(
            embedder, store, BM25Index(), lambda: set(sizes), FusionParams(length_penalty=0.02)
        ),
        Retriever(embedder, store, BM25Index(), lambda: sizes, FusionParams()),
    ):
        assert all(
            h.score == pytest.approx(h.dense_score)
            for h in retriever.search("charge the lamp battery", mode="dense", k=4).hits
        )


def test_document_weight_mixes_in_the_whole_documents_similarity() -> None:
    from rag_core.retrieval import Retriever
    from rag_core.stores.keyword import BM25Index
    from rag_core.testing import FakeEmbedder, InMemoryStore

    def make(doc: str, i: int, text: str) -> Chunk:
        return Chunk(f"{doc}:v:{i:05d}", doc, f"{doc}.md", "v", i, text, 0, len(text))

    # the same matching sentence, once in a document about it and once among unrelated text
    focused = [make("lamp", 0, "Charge the lamp battery with USB-C."),
               make("lamp", 1, "The lamp battery lasts 14 hours when charged.")]  # fmt: skip
    mixed = [make("inbox", 0, "Charge the lamp battery with USB-C."),
             make("inbox", 1, "Invoices are payable within thirty days."),
             make("inbox", 2, "The cafeteria opens at seven in the morning.")]  # fmt: skip
    chunks = [*focused, *mixed]
    embedder, store = FakeEmbedder(), InMemoryStore()
    store.add(chunks, embedder.embed_documents([c.text for c in chunks]))
    ready = {"lamp": 2, "inbox": 3}
    weighted = Retriever(
        embedder, store, BM25Index(), lambda: ready, FusionParams(document_weight=0.2)
    )
    query = "charge the lamp battery"
    hits = weighted.search(query, mode="dense", k=5).hits
    assert hits[0].chunk.id == "lamp:v:00000"  # tied chunks: the focused document wins
    sims = weighted.document_similarities(embedder.embed_query(query), ["lamp", "inbox", "gone"])
    assert set(sims) == {"lamp", "inbox"} and sims["lamp"] > sims["inbox"]
    for hit in hits:
        assert hit.dense_score is not None  # the hits keep the raw similarity
        expected = 0.8 * hit.dense_score + 0.2 * sims[hit.chunk.document_id]
        assert hit.score == pytest.approx(expected)
    # the document vectors are read once per document and kept
    calls: list[list[str]] = []
    original = store.document_vectors

    def counting(document_ids: Sequence[str]) -> dict[str, list[float]]:
        calls.append(list(document_ids))
        return original(document_ids)

    store.document_vectors = counting  # type: ignore[method-assign]
    weighted.search(query, mode="dense", k=5)
    assert calls == []
    # at 0 (or in keyword mode) the ranking is the chunks' own similarity
    plain = Retriever(embedder, store, BM25Index(), lambda: ready, FusionParams())
    plain_hits = plain.search(query, mode="dense", k=5).hits
    assert plain_hits[0].chunk.id == "inbox:v:00000"  # the tie goes the other way without it
    assert all(h.score == pytest.approx(h.dense_score) for h in plain_hits)


def test_fusion_fetches_only_the_keyword_chunks_that_make_the_cut() -> None:
    store = {f"k{i:02d}": chunk(f"k{i:02d}") for i in range(20)}
    del store["k00"]  # in the keyword index, not in the vector store: skipped, next one taken
    asked: list[str] = []

    def fetch(ids: Sequence[str]) -> list[Chunk]:
        asked.extend(ids)
        return [store[i] for i in ids if i in store]

    keyword = [(f"k{i:02d}", 20.0 - i) for i in range(20)]
    hits = fuse([], keyword, fetch, {"d1"}, k=3, mode="bm25", params=FusionParams())
    assert [h.chunk.id for h in hits] == ["k01", "k02", "k03"]
    assert [h.rank for h in hits] == [1, 2, 3]
    assert sorted(asked) == ["k00", "k01", "k02", "k03"]  # not all 20 candidates

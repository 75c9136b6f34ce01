from rag_core.retrieval import FusionParams, content_words, fuse, standalone_query
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
    history = [Turn("What is Acme Cloud?", "A hosting service.")]
    q = "How many regions does the Zorblax reactor network operate in?"
    assert standalone_query(q, history) == q
    assert standalone_query("anything", []) == "anything"


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

import pytest

from rag_core.grounding import (
    UNSUPPORTED_MARK,
    Evidence,
    check_sentences,
    citations_for,
    render_answer,
    salient_terms,
    split_answer,
)
from rag_core.testing import FakeEmbedder
from rag_core.types import Chunk, Hit

ACME = (
    "Acme Cloud offers monthly and annual plans. Annual plans can be refunded in full within "
    "30 days of purchase. Monthly plans are not refundable."
)
ZORBLAX = (
    "The Zorblax reactor was commissioned by Dr. Ilse Varga in 2011. It powers the northern grid."
)


def hits() -> list[Hit]:
    chunks = [
        Chunk("a", "d1", "billing.md", "v", 0, ACME, 0, len(ACME)),
        Chunk("z", "d2", "reactor.txt", "v", 0, ZORBLAX, 0, len(ZORBLAX)),
    ]
    return [Hit(c, i + 1, 1.0 / (i + 1)) for i, c in enumerate(chunks)]


def evidence(question: str) -> Evidence:
    return Evidence(question, hits(), FakeEmbedder())


def test_salient_terms_are_numbers_names_and_quotes() -> None:
    terms = salient_terms('The answer would be "Ethan" because he was CEO of Acme Cloud in 2019.')
    assert "ethan" in terms and "2019" in terms and "acme" in terms and "cloud" in terms
    assert "the" not in terms
    assert "6" in salient_terms("The answer is: six months")


def test_copied_sentence_is_supported_and_cited() -> None:
    ev = evidence("How long do I have to get a refund on an annual plan?")
    [check] = check_sentences(
        ["Annual plans can be refunded in full within 30 days of purchase."], ev, threshold=0.6
    )
    assert check.supported and check.citation == 1
    assert check.text.endswith("[1]") and "30 days" in (check.support or "")


def test_wrong_number_is_unsupported_even_if_words_match() -> None:
    ev = evidence("How long do I have to get a refund on an annual plan?")
    [check] = check_sentences(
        ["Annual plans can be refunded within 6 months [1]."], ev, threshold=0.6
    )
    assert not check.supported
    assert "6" in check.reason


def test_invented_name_is_unsupported() -> None:
    ev = evidence("What is the name of the CEO of Acme Cloud?")
    [check] = check_sentences(
        ['The answer to this question would be "Ethan" because he was the CEO of Acme Cloud.'],
        ev,
        threshold=0.6,
    )
    assert not check.supported and "ethan" in check.reason


def test_wrong_marker_is_repaired_and_missing_marker_added() -> None:
    ev = evidence("Who commissioned the Zorblax reactor?")
    checks = check_sentences(
        [
            "The Zorblax reactor was commissioned by Dr. Ilse Varga in 2011 [1].",
            "Annual plans can be refunded in full within 30 days of purchase.",
        ],
        ev,
        threshold=0.6,
    )
    assert [c.citation for c in checks] == [2, 1]
    assert checks[0].text.endswith("[2]") and "[1]" not in checks[0].text
    cites = citations_for(checks, ev.hits)
    assert [c.n for c in cites] == [1, 2]
    assert cites[1].support_start is not None
    assert ZORBLAX[cites[1].support_start : cites[1].support_end] == cites[1].support


def test_invented_date_is_flagged_while_true_part_passes() -> None:
    ev = evidence("Who commissioned the Zorblax reactor?")
    checks = check_sentences(
        [
            "The Zorblax reactor was commissioned by Dr. Ilse Varga [1].",
            "It opened on 4 March 1998.",
        ],
        ev,
        threshold=0.6,
    )
    assert checks[0].supported and not checks[1].supported
    assert [c.verdict for c in checks] == ["supported", "marked"]
    shown = render_answer("", checks)
    assert shown.count(UNSUPPORTED_MARK) == 1 and shown.endswith(UNSUPPORTED_MARK)
    sentences = [
        "The Zorblax reactor was commissioned by Dr. Ilse Varga [1].",
        "It opened on 4 March 1998.",
    ]
    removed = check_sentences(sentences, ev, threshold=0.6, policy="remove")
    assert [c.verdict for c in removed] == ["supported", "removed"]
    assert "1998" not in render_answer("", removed)
    unchecked = check_sentences(sentences, ev, threshold=0.6, policy="off")
    assert render_answer("Lead:", unchecked) == "Lead: " + " ".join(c.text for c in unchecked)


def test_filler_sentences_are_not_claims() -> None:
    ev = evidence("Who commissioned the Zorblax reactor?")
    [check] = check_sentences(["Sure!"], ev, threshold=0.6)
    assert not check.claim and check.verdict == "no-claim" and render_answer("", [check]) == ""


def test_split_answer_keeps_markers_with_their_sentence() -> None:
    parts = split_answer("Refunds take 30 days. [1] Monthly plans are not refundable [1]. Done")
    assert parts == ["Refunds take 30 days. [1]", "Monthly plans are not refundable [1].", "Done"]


def test_fragments_without_a_claim_are_not_supported_claims() -> None:
    ev = evidence("How do I print in Python?")
    checks = check_sentences(["```python [2]", "This will output: [1]"], ev, threshold=0.6)
    assert [c.claim for c in checks] == [False, False]
    assert render_answer("", checks) == ""


BILLING = (
    "Annual plans can be refunded in full within 30 days of purchase. Monthly plans are not "
    "refundable. Invoices are sent by email at the start of each month. The billing office moved "
    "to Lyon in 2019. Archived invoices are kept for 6 months."
)


def billing_evidence(question: str) -> Evidence:
    chunk = Chunk("b", "d3", "billing.md", "v", 0, BILLING, 0, len(BILLING))
    return Evidence(question, [Hit(chunk, 1, 1.0)], FakeEmbedder())


def test_number_from_a_sentence_about_something_else_does_not_support_a_claim() -> None:
    ev = billing_evidence("How long do I have to get a refund on an annual plan?")
    [check] = check_sentences(
        ["Annual plans can be refunded in full within 6 months of purchase [1]."],
        ev,
        threshold=0.6,
    )
    # "6 months" is in the passage, but in the sentence about archived invoices
    assert not check.supported
    assert check.citation is None and "6" in check.reason
    [true] = check_sentences(
        ["Annual plans can be refunded in full within 30 days of purchase [1]."], ev, threshold=0.6
    )
    assert true.supported and true.support is not None and "30 days" in true.support


def test_date_and_name_must_be_in_the_matching_sentence_window() -> None:
    ev = billing_evidence("When did the billing office move?")
    [moved] = check_sentences(["The billing office moved to Lyon in 2019."], ev, threshold=0.6)
    assert moved.supported and moved.citation == 1
    # the year and the city of other sentences do not make a claim about refunds true
    [wrong] = check_sentences(
        ["Annual plans can be refunded in full within 30 days of purchase in Lyon since 2019."],
        ev,
        threshold=0.6,
    )
    assert not wrong.supported
    assert "2019" in wrong.reason or "lyon" in wrong.reason


def test_name_from_the_document_title_counts_but_a_number_does_not() -> None:
    text = "The reactor was commissioned in 2011. It powers the northern grid."
    chunk = Chunk("r", "d4", "Zorblax report 1998.md", "v", 0, text, 0, len(text))
    ev = Evidence("Who runs the reactor?", [Hit(chunk, 1, 1.0)], FakeEmbedder())
    [named] = check_sentences(["The Zorblax reactor powers the northern grid."], ev, threshold=0.6)
    assert named.supported
    [dated] = check_sentences(
        ["The reactor powers the northern grid since 1998."], ev, threshold=0.6
    )
    assert not dated.supported and "1998" in dated.reason


def test_gate_features_weigh_coverage_by_idf() -> None:
    from rag_core.grounding import gate_features
    from rag_core.retrieval import TermStat

    [acme, _] = hits()
    terms = [TermStat("refund", 3, 1.0), TermStat("annual", 2, 1.0), TermStat("zorg", 0, 2.0)]
    f = gate_features([acme], 0.6, terms)
    assert f.top_dense == 0.6
    assert f.coverage == pytest.approx(0.5)  # the unknown term holds half of the idf mass
    assert f.known == pytest.approx(0.5)
    # a term the documents use, but not in these passages: known, not covered
    f = gate_features([acme], 0.6, [TermStat("refund", 3, 1.0), TermStat("reactor", 1, 1.0)])
    assert f.coverage == pytest.approx(0.5) and f.known == 1.0
    assert gate_features([acme], None, []).coverage == 0.0
    # coverage is what one passage holds: terms spread over two passages count once each
    [acme, zorblax] = hits()
    split = [TermStat("refund", 3, 1.0), TermStat("reactor", 1, 1.0)]
    f = gate_features([acme, zorblax], 0.6, split)
    assert f.coverage == pytest.approx(0.5) and f.known == 1.0
    together = [TermStat("refund", 3, 1.0), TermStat("annual", 2, 1.0)]
    assert gate_features([zorblax, acme], 0.6, together).coverage == 1.0
    # words that shape a question ("how long", "get") are not topic terms, even when unknown
    shaped = [TermStat("long", 0, 5.0), TermStat("get", 0, 5.0), TermStat("refund", 3, 1.0)]
    assert gate_features([acme], 0.6, shaped).coverage == 1.0
    # nor are the words of a request ("describe ... in detail", "explain", "tell me")
    from rag_core.stores.tokenize import tokenize

    asked = tokenize("Describe the refund in detail, explain it and tell me an overview")
    request = [TermStat(t, 3 if t == "refund" else 0, 2.0) for t in asked]
    f = gate_features([acme], 0.6, request)
    assert (f.coverage, f.known) == (1.0, 1.0)


def test_fit_gate_separates_on_coverage_and_keeps_the_similarity_scale() -> None:
    from rag_core.grounding import GateFeatures, GateModel, fit_gate

    answerable = [GateFeatures(0.5 + 0.01 * i, 0.9 + 0.005 * (i % 5), 1.0) for i in range(20)]
    # lower similarities, and a rare term of the question is nowhere in the passages
    unanswerable = [
        GateFeatures(0.45 + 0.01 * i, 0.3 + 0.01 * (i % 5), 0.6 + 0.1 * (i % 2)) for i in range(20)
    ]
    model = fit_gate(answerable, unanswerable)
    assert model.coverage_weight > 0.1
    assert min(map(model.score, answerable)) > max(map(model.score, unanswerable))
    full = GateFeatures(0.7, 1.0, 1.0)
    assert model.score(full) == pytest.approx(0.7)  # all terms covered: the similarity itself
    assert GateModel(0.5, 0.2).score(GateFeatures(0.6, 0.8, 0.5)) == pytest.approx(0.4)
    assert GateModel(0.5, 0.2).score(GateFeatures(0.1, 0.0, 0.0)) == 0.0  # never below 0
    with pytest.raises(ValueError, match="two to four numbers"):
        GateModel.from_weights([1.0, 2.0, 3.0, 4.0, 5.0])


def test_gate_with_a_sentence_weight_reads_the_best_sentence_score() -> None:
    """A third weight makes the gate read the best passage sentence's score as an answer; a
    fit on features with that score returns three weights on the same similarity scale."""
    from rag_core.grounding import GateFeatures, GateModel, fit_gate

    model = GateModel.from_weights([0.5, 0.2, 0.3])
    assert model.reads_sentence and model.weights == (0.5, 0.2, 0.3)
    assert model.score(GateFeatures(0.6, 0.8, 0.5, 0.4)) == pytest.approx(0.4 + 0.12)
    assert model.score(GateFeatures(0.7, 1.0, 1.0, 1.0)) == pytest.approx(1.0)
    asks = GateModel.from_weights([0.5, 0.2, 0.3, -0.4])
    assert asks.reads_kind and asks.score(GateFeatures(0.6, 0.8, 0.5, 0.4, 1.0)) == pytest.approx(
        0.12
    )
    assert not GateModel.from_weights([0.5, 0.2]).reads_sentence
    # answerable and unanswerable alike in retrieval, apart in the best sentence's score
    answerable = [GateFeatures(0.5 + 0.01 * (i % 7), 0.8, 1.0, 0.6 + 0.01 * i) for i in range(20)]
    unanswerable = [
        GateFeatures(0.48 + 0.01 * (i % 7), 0.8, 1.0, 0.2 + 0.01 * i) for i in range(20)
    ]
    fitted = fit_gate(answerable, unanswerable)
    assert len(fitted.weights) == 3 and fitted.sentence_weight > 0.1
    assert min(map(fitted.score, answerable)) > max(map(fitted.score, unanswerable))
    with pytest.raises(ValueError, match="same features"):
        fit_gate([*answerable, GateFeatures(0.5, 0.8, 1.0)], unanswerable)


def test_lead_ins_that_address_the_question_are_removed() -> None:
    from rag_core.grounding import clean_sentence

    assert (
        clean_sentence("To the question is: It spins at 7200 rpm [1].")
        == "It spins at 7200 rpm [1]."
    )
    assert clean_sentence("The answer to your question is: 2 years.") == "2 years."
    assert clean_sentence("The reason for the answer is: 2 years.") == ""

from rag_core.grounding import (
    UNSUPPORTED_MARK,
    Evidence,
    check_sentences,
    citations_for,
    extractive_answer,
    gate_score,
    render,
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
    shown = render(checks, "mark")
    assert shown.count(UNSUPPORTED_MARK) == 1 and shown.endswith(UNSUPPORTED_MARK)
    assert "1998" not in render(checks, "remove")


def test_filler_sentences_are_not_claims() -> None:
    ev = evidence("Who commissioned the Zorblax reactor?")
    [check] = check_sentences(["Sure!"], ev, threshold=0.6)
    assert check.reason == "no claim" and render([check], "mark") == ""


def test_split_answer_keeps_markers_with_their_sentence() -> None:
    parts = split_answer("Refunds take 30 days. [1] Monthly plans are not refundable [1]. Done")
    assert parts == ["Refunds take 30 days. [1]", "Monthly plans are not refundable [1].", "Done"]


def test_extractive_answer_quotes_the_best_sentence() -> None:
    ev = evidence("Within how many days can annual plans be refunded?")
    checks = extractive_answer(
        "Within how many days can annual plans be refunded?", ev, min_score=0.2
    )
    assert checks and checks[0].citation == 1 and "30 days" in checks[0].text
    assert extractive_answer("xylophone quasar?", ev, min_score=0.2) == []


def test_gate_score_adds_agreement_bonus() -> None:
    h = hits()
    assert gate_score(h, 0.5) == 0.5
    both = [Hit(h[0].chunk, 1, 0.1, dense_rank=1, keyword_rank=2)]
    assert gate_score(both, 0.5) == 0.55
    assert gate_score([], None) == 0.0


def test_fragments_without_a_claim_are_not_supported_claims() -> None:
    ev = evidence("How do I print in Python?")
    checks = check_sentences(["```python [2]", "This will output: [1]"], ev, threshold=0.6)
    assert [c.reason for c in checks] == ["no claim", "no claim"]
    assert render(checks, "mark") == ""


def test_answer_type_bonus_prefers_sentences_with_the_asked_kind_of_fact() -> None:
    from rag_core.grounding import answer_type_bonus

    assert answer_type_bonus("How long does it last?", "It runs for about 14 hours.") == 0.1
    assert answer_type_bonus("How long does it last?", "It has a 4000 mAh battery.") == 0.0
    assert answer_type_bonus("When was it built?", "It was built in 2011.") == 0.1
    assert answer_type_bonus("Who built it?", "It was built in 2011.") == 0.0

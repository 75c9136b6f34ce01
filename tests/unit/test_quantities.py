"""Quantities with their units and roles (rag_core/quantities.py), and the checks built on them."""

from __future__ import annotations

from rag_core.grounding import Evidence, check_sentences
from rag_core.quantities import compatible, quantities, unsupported
from rag_core.testing import FakeEmbedder
from rag_core.types import Chunk, Hit


def test_numbers_keep_their_units_roles_and_rates() -> None:
    found = quantities(
        "The fee is 25 cents, at most 15 kg; typical load: 12 kg. From €35 or EUR 40.50, "
        "3 tablets per day, two weeks."
    )
    got = [(q.value, q.unit, q.role, q.rate) for q in found]
    assert ("25", "cent", None, None) in got
    assert ("15", "kg", "max", None) in got and ("12", "kg", "typical", None) in got
    assert ("35", "eur", None, None) in got and ("40.5", "eur", None, None) in got
    assert ("3", None, None, "day") in got and ("2", "week", None, None) in got


def test_a_claim_needs_the_same_unit_and_role() -> None:
    assert unsupported("It costs 25 euros.", ["The fee is 25 cents."])
    assert not unsupported("It costs 25 cents.", ["The fee is 25 cents."])
    assert unsupported("The maximum load is 12 kg.", ["Typical load 12 kg, maximum 15 kg."])
    assert not unsupported("The maximum load is 15 kg.", ["Typical load 12 kg, maximum 15 kg."])
    assert not unsupported("It runs 14 hours.", ["Runtime: about 14 hours at 30% brightness."])
    assert not unsupported("Refunds take 10 working days.", ["Allow 10 working days."])
    assert unsupported("Take 3 a week.", ["Take 3 tablets per day."])
    a, b = quantities("12 kg")[0], quantities("12")[0]
    assert compatible(a, b) and compatible(b, a)  # a unit only one side gives is no conflict


def _evidence(text: str, question: str) -> Evidence:
    chunk = Chunk("c1", "d1", "fees.md", "v", 0, text, 0, len(text))
    return Evidence(question, [Hit(chunk, 1, 0.9, dense_score=0.9, dense_rank=1)], FakeEmbedder())


def test_checks_catch_a_swapped_unit_and_a_wrong_maximum() -> None:
    ev = _evidence(
        "Charging costs 25 cents per kWh at the station. The cable weighs 2 kg. "
        "The typical load of the trolley is 12 kg and its maximum load is 15 kg.",
        "How much does charging cost?",
    )
    swapped, right = check_sentences(
        ["Charging costs 25 euros per kWh [1].", "Charging costs 25 cents per kWh [1]."],
        ev,
        threshold=0.3,
    )
    assert not swapped.supported and "25 eur" in swapped.reason
    assert right.supported
    wrong_max, right_max = check_sentences(
        ["The maximum load of the trolley is 12 kg [1].", "Its maximum load is 15 kg [1]."],
        ev,
        threshold=0.3,
    )
    assert not wrong_max.supported and "(max)" in wrong_max.reason
    assert right_max.supported


def test_the_support_shown_is_the_sentence_that_holds_the_fact() -> None:
    ev = _evidence(
        "The Lumen L2 runs 14 hours at medium brightness. A full charge takes 3 hours with the "
        "supplied USB-C cable. The lamp weighs 800 g.",
        "How long does the lamp run at medium brightness?",
    )
    (check,) = check_sentences(["It runs 14 hours at medium brightness [1]."], ev, threshold=0.3)
    assert check.supported and check.support is not None and "14 hours" in check.support

"""The extractive scorer: the quoted sentence is the one that holds the asked-for fact."""

import pytest

from rag_core.answer_types import expected_kinds, holds_kind, looks_like_code
from rag_core.extractive import (
    choose_sentences,
    does_not_answer,
    extractive_answer,
    form_penalty,
    is_factoid,
)
from rag_core.grounding import Evidence, line_units
from rag_core.testing import FakeEmbedder
from rag_core.types import Chunk, Hit

LAMP = (
    "Lumen L2 battery. A full charge takes 3 hours with the supplied USB-C cable. "
    "At medium brightness the lamp runs for 14 hours on one charge. "
    "The Lumen L2 is a desk lamp with a wireless charging pad."
)
WARRANTY = (
    "Warranty\nNorthwind Lighting gives a two-year warranty on the Lumen L2. "
    "Contact us for questions about the Lumen L2 warranty. © 2024 Northwind Lighting"
)


def evidence(question: str, *texts: str) -> Evidence:
    chunks = [
        Chunk(f"c{i}", f"d{i}", f"doc{i}.md", "v", 0, t, 0, len(t))
        for i, t in enumerate(texts or (LAMP, WARRANTY))
    ]
    hits = [Hit(c, i + 1, 1.0 / (i + 1)) for i, c in enumerate(chunks)]
    return Evidence(question, hits, FakeEmbedder())


@pytest.mark.parametrize(
    ("question", "kinds"),
    [
        ("How long does the battery last at medium brightness?", ("duration",)),
        ("What does the Aerio T5 cost now?", ("money", "percent")),
        ("What is the phone number of customer care?", ("phone",)),
        ("How heavy is the lamp?", ("weight",)),
        ("How tall is the tower fan?", ("length",)),
        ("Who manages the field station?", ("name",)),
        ("What is the heaviest parcel they accept?", ("quantity",)),
        ("By what date must leave be used?", ("date",)),
        ("What are the visiting hours on the wards?", ("time",)),
        ("Can I bring my dog?", ()),
        # a yes/no question asks for no quantity, whatever it mentions
        ("Can I charge my phone on the pad while the lamp runs on battery?", ()),
        ("Is the parking fee higher at weekends?", ()),
        # "when" opening the question decides over a topic word such as "pay"
        ("When do members have to pay their subscription?", ("date", "time", "duration")),
        ("How many paid days off do I get for moving house?", ("duration",)),
        ("From which day of an illness do I need a doctor's note?", ("date", "ordinal")),
        # a product called "Lumen" is no question about lumens
        ("What does it mean when the Lumen L2 flashes red?", ()),
        ("How many lumens does the lamp give?", ("brightness",)),
        ("Which number do I call to book a visit?", ("phone",)),
        ("What colour is the charging ring when the battery is full?", ("colour",)),
    ],
)
def test_expected_kinds(question: str, kinds: tuple[str, ...]) -> None:
    assert expected_kinds(question) == kinds


def test_holds_kind_reads_units_currencies_and_dates() -> None:
    assert holds_kind("It runs for 14 hours.", "duration")
    assert holds_kind("A 3-year warranty applies.", "duration")
    assert holds_kind("The pass costs EUR 20.00 a week.", "money")
    assert holds_kind("Parking is £5.50 for three hours.", "money")
    assert not holds_kind("Parking is available for three hours.", "money")
    assert holds_kind("Leave must be used by 31 March.", "date")
    assert holds_kind("Visiting hours are 14:00 to 20:00.", "time")
    assert holds_kind("Call +44 20 7946 0958 any day.", "phone")
    assert not holds_kind("Write to care@orvella.example.", "phone")
    assert not holds_kind("Open 2024 - 2025.", "phone")
    assert holds_kind("Weight: 1.4 kg", "weight") and not holds_kind("Weight: 14 cm", "weight")
    assert not holds_kind("The station has a radio [1].", "quantity")  # a marker is no number


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("JUPITER = (1.9e+27,   7.1492e7)\n    ...", True),
        (">>> fruits = ['orange', 'apple', 'pear', 'banana']", True),
        ("$ fetchmail -d 300 --ssl", True),
        ("import sqlite3", True),
        ('raise OptionValueError("%s option invalid when more than 3 values")', True),
        ("Usage: ./sqlite3 [OPTIONS] FILENAME [SQL]", True),
        ("x = 5", True),
        # a sentence cut from a code block: half of its lines are code
        ("NEPTUNE = (1.024e+26, 2.4746e7)\n    ...     def __init__(self, mass, radius):", True),
        ("Set the option\nx = 5\nin the configuration file to retry five times.", False),
        (
            'raise OptionValueError("%s invalid when moon is full"\n    % opt_str)\n'
            "setattr(parser.values, option.dest, 1)\n   ...",
            True,
        ),
        ("Call connect() before you send the first query (see below).", False),
        ("The scooter is limited (by law,\nup to 25 km/h).", False),
        ("... and many more.", False),
        (
            ">>> Planet.EARTH.value\n    (5.976e+24, 6378140.0)\n"
            "    >>> Planet.EARTH.mass\n    5.976e+24",
            True,
        ),
        # prose that quotes code, table rows and figures in brackets are sentences
        ("``-190 % 12 == 2`` is useful; ``-190 % 12 == -10`` is a bug waiting to bite.", False),
        ("Component: Memory (RAM) | Minimum: 4 GB | Recommended: 8 GB", False),
        ("Noise level | 24 dB(A) at speed 1, 52 dB(A) at speed 9", False),
        ("The default setting for SQLITE_MAX_COLUMN is 2000.", False),
        ("Set timeout = 300 seconds in the configuration file to wait five minutes.", False),
        ("Tent pitch (up to 2 adults) <EUR 18>", False),
        ("Weight = 1.4 kg", False),
        ("$ 25 a night for a tent pitch", False),
        ("Speed < 25 km/h", False),
        ("Temperature: -10 to 40 [°C]", False),
        ("class B: EUR 40 a year", False),
        ("return the bike within 3 days", False),
        ("MAX_SIZE = 4096", True),
        ("self.timeout = 30", True),
        ('{"retries": [1, 2, 4]}', True),
        ("def area(r):", True),
        ("class Shape(object):", True),
        ("import os, sys", True),
    ],
)
def test_a_line_of_code_is_told_from_a_sentence(text: str, code: bool) -> None:
    assert looks_like_code(text) is code


def test_a_programs_literals_are_no_facts_of_the_asked_kind() -> None:
    # "How many moons does Jupiter have?" over Python's documentation: an example's constants
    # answered it as a quantity, and the gate's override let the question through
    assert not holds_kind("JUPITER = (1.9e+27,   7.1492e7)", "quantity")
    assert not holds_kind(">>> price = 20  # EUR", "money")
    assert holds_kind("Jupiter has 95 known moons.", "quantity")
    q = "How many moons does Jupiter have?"
    # nothing quoted: only a sentence that holds the asked-for kind may answer
    assert choose_sentences(q, evidence(q, "JUPITER = (1.9e+27, 7.1492e7)"), min_score=-1) == []
    assert choose_sentences(q, evidence(q, "Jupiter has 95 known moons."), min_score=-1)


def test_the_sentence_that_holds_the_duration_is_chosen_over_its_neighbour() -> None:
    q = "How long does the Lumen L2 run at medium brightness?"
    chosen = choose_sentences(q, evidence(q))
    assert "14 hours" in chosen[0].sentence.text
    assert chosen[0].holds_kind


def test_a_question_without_an_answer_of_its_kind_quotes_nothing_confidently() -> None:
    q = "How much does a replacement battery cost?"
    for s in choose_sentences(q, evidence(q), min_score=-1):
        assert not s.holds_kind  # no amount of money anywhere: every candidate is penalised
    assert extractive_answer(q, evidence(q), min_score=0.3) == []


def test_extractive_answer_quotes_verbatim_with_the_passage_marker() -> None:
    q = "How long is the warranty on the Lumen L2?"
    checks = extractive_answer(q, evidence(q))
    assert checks and checks[0].citation == 2
    assert checks[0].text == "Northwind Lighting gives a two-year warranty on the Lumen L2. [2]"
    assert checks[0].support and checks[0].support in WARRANTY


def test_footers_questions_and_headings_lose_to_statements() -> None:
    assert form_penalty("© 2024 Northwind Lighting") > form_penalty("Warranty") > 0
    assert form_penalty("What if the lamp flickers?") > 0
    assert form_penalty("The lamp runs for 14 hours.") == 0


def test_line_units_cut_table_rows_and_headings_but_not_wrapped_lines() -> None:
    text = (
        "Prices\n| Size | Price |\n| Small | EUR 5 |\nParcels up to 2 kg are sent at the\n"
        "small rate within two days."
    )
    units = [text[s:e].strip() for s, e in line_units(text)]
    assert "Prices" in units and "| Small | EUR 5 |" in units
    assert "Parcels up to 2 kg are sent at the\nsmall rate within two days." in units


def test_does_not_answer_and_is_factoid() -> None:
    assert does_not_answer("How long is the warranty?", "Northwind gives a warranty.")
    assert not does_not_answer("How long is the warranty?", "The warranty lasts two years.")
    assert not does_not_answer("Can I bring my dog?", "Dogs are not allowed.")
    assert is_factoid("How long is the warranty?")
    assert not is_factoid("How do I reset the lamp?")


def test_a_yes_no_question_answered_by_a_negation_leads_with_no() -> None:
    from rag_core.extractive import polar_lead

    assert polar_lead("Can I bring my dog?", "Pets are not allowed at the station. [1]") == "No."
    assert polar_lead("Can I bring my dog?", "Dogs are welcome on a lead. [1]") == ""
    assert polar_lead("How long is the warranty?", "It is not transferable. [1]") == ""


def test_only_sentences_with_the_asked_kind_are_quoted() -> None:
    q = "What is the phone number of Northwind?"
    ev = evidence(q, "Northwind answers by e-mail at care@northwind.example. Write any day.")
    assert extractive_answer(q, ev, min_score=-1) == []


def test_a_table_row_with_its_headers_is_a_unit_of_its_own() -> None:
    text = "Component: CPU | Minimum: 2 cores\nComponent: Memory | Minimum: 4 GB\nThe server needs"
    units = [text[s:e].strip() for s, e in line_units(text)]
    assert units[:2] == ["Component: CPU | Minimum: 2 cores", "Component: Memory | Minimum: 4 GB"]


def test_a_clause_number_is_neither_a_date_nor_a_quantity() -> None:
    assert not holds_kind("2.2 New rowing members pay a joining fee.", "date")
    assert not holds_kind("1.2 Every rowing member must pass the swim test.", "quantity")
    assert holds_kind("15 Full members must be present.", "quantity")
    assert holds_kind("Subscriptions are due by 31.01. each year.", "date")


def test_a_name_opening_a_sentence_and_an_ordinal_are_read() -> None:
    assert holds_kind("Ines Varga, Head of People, is responsible for this policy.", "name")
    assert holds_kind("Tom Brandt manages the station.", "name")
    assert not holds_kind("The Club is managed by a Committee.", "name")
    assert holds_kind("From the fourth calendar day you need a doctor's certificate.", "ordinal")
    assert holds_kind("Bring a note from the 4th day.", "ordinal")
    assert not holds_kind("Bring a note after four days.", "ordinal")
    assert holds_kind("The ring turns green when the battery is full.", "colour")
    assert not holds_kind("The ring shows the battery level.", "colour")


def test_a_sentence_that_refers_back_is_quoted_after_the_one_it_leans_on() -> None:
    q = "May I bring my assistance dog?"
    text = (
        "Visiting hours are from 14:00 to 20:00. Pets are not allowed in the clinic. "
        "The only exceptions are registered assistance dogs and therapy dogs of our volunteers."
    )
    chosen = choose_sentences(q, evidence(q, text), min_score=-1)
    assert [c.sentence.text for c in chosen] == [
        "Pets are not allowed in the clinic.",
        "The only exceptions are registered assistance dogs and therapy dogs of our volunteers.",
    ]
    # a sentence about the document itself stands alone
    q2 = "What does the leave policy explain?"
    text2 = "Leave is agreed with your manager. This policy explains the types of leave we offer."
    chosen2 = choose_sentences(q2, evidence(q2, text2), max_sentences=1, min_score=-1)
    assert [c.sentence.text for c in chosen2] == [
        "This policy explains the types of leave we offer."
    ]


def test_a_list_item_is_read_with_the_line_that_introduces_it() -> None:
    q = "What is the yearly subscription for a social member?"
    text = (
        "New members pay a one-off joining fee of EUR 50 with their first subscription.\n"
        "Annual subscriptions for the current year are:\n"
        "- Full member: EUR 240\n"
        "- Social member: EUR 35\n"
    )
    chosen = choose_sentences(q, evidence(q, text), min_score=-1)
    assert chosen[0].sentence.text == "- Social member: EUR 35"

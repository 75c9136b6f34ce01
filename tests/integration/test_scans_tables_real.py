"""Scanned pages and tables end to end: files made in the test, ingested by the real engine
(default embedder and generator, real Chroma, SQLite and PostgreSQL), asked about; the answer
must cite the passage that holds the fact, with its page."""

from __future__ import annotations

import re

import pytest

from rag_core.config import Settings
from rag_core.engine import Engine
from rag_core.stores.chroma import ChromaStore
from rag_core.testing import fake_engine
from rag_core.types import Done, Logged
from tests import docmaker

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def engine_factory(real_embedder, real_generator, tmp_path_factory):  # type: ignore[no-untyped-def]
    def make(db_url: str) -> Engine:
        home = tmp_path_factory.mktemp("home")
        return fake_engine(
            Settings(home=home, database_url=db_url),
            embedder=real_embedder,
            store=ChromaStore(path=home / "chroma"),
            generator=real_generator,
        )

    return make


def chat(engine: Engine, question: str, **kw: object) -> tuple[Done, Logged]:
    events = list(engine.chat(question, options=engine.options(**kw)))  # type: ignore[arg-type]
    done = next(e for e in events if isinstance(e, Done))
    logged = events[-1]
    assert isinstance(logged, Logged), events[-1]
    return done, logged


def test_a_scanned_pdf_is_read_by_ocr_and_cited_with_its_page(engine_factory, db_url) -> None:  # type: ignore[no-untyped-def]
    engine = engine_factory(db_url)
    scan = docmaker.make_image_pdf(
        [
            ["Harbour office, visitor notes.", "Boats must register at the harbour office."],
            ["Lighthouse history.", "The lighthouse lamp on Skerry Island was replaced in 1987."],
        ]
    )
    engine.ingest_bytes(b"Orders ship from Rotterdam. Express shipping takes a day.\n", "ship.txt")
    result = engine.ingest_bytes(scan, "harbour-scan.pdf")
    assert result.status == "added", result.error
    assert result.document is not None and result.document.ocr_pages == (1, 2)
    assert engine.document("harbour-scan.pdf").ocr_pages == (1, 2)  # the document's report

    done, logged = chat(engine, "When was the lighthouse lamp on Skerry Island replaced?")
    assert not done.refused and "1987" in done.answer
    cited = [c.chunk for c in done.citations]
    assert cited and cited[0].document_name == "harbour-scan.pdf"
    assert cited[0].page == 2 and cited[0].ocr  # the page of the scan, marked as OCR
    assert "1987" in cited[0].text
    # the logged turn keeps the mark (sources panel after a reload, REST, CLI)
    turn = engine.log.get_turn(logged.turn_id, "local")
    assert [c.chunk.ocr for c in turn.citations] == [True] * len(turn.citations)


TABLE_DOCS = {
    "routers.docx": docmaker.make_docx(
        [
            "# Routers",
            "The shop sells two home routers. Both come with a power supply.",
            [
                ["Model", "Ethernet ports", "Wi-Fi"],
                ["X200", "four 2.5 Gbit ports", "Wi-Fi 6E"],
                ["X100", "two 1 Gbit ports", "Wi-Fi 5"],
            ],
        ]
    ),
    "pumps.html": docmaker.make_html(
        [
            "# Pumps",
            "Our pumps are built for irrigation and fountains.",
            [["Pump", "Maximum flow", "Motor"], ["P-40", "120 litres per minute", "0.75 kW"]],
        ]
    ),
    "trains.md": docmaker.make_markdown(
        [
            "# Morning trains",
            "Trains leave the central station every morning.",
            [["Train", "Departure", "Platform"], ["Coastal Express", "08:15", "platform 7"]],
        ]
    ),
    "boilers.pdf": docmaker.make_table_pdf(
        "Boiler care. A certified technician services every boiler.",
        [["Boiler", "Service interval", "Pressure"], ["Therma 9", "every 18 months", "1.5 bar"]],
    ),
}
TABLE_QUESTIONS = [
    ("How many Ethernet ports does the X200 router have?", "routers.docx", "four 2.5 Gbit"),
    ("What is the maximum flow of the P-40 pump?", "pumps.html", "120 litres per minute"),
    ("From which platform does the Coastal Express leave?", "trains.md", "platform 7"),
    ("How often must the Therma 9 boiler be serviced?", "boilers.pdf", "18 months"),
]


def test_a_fact_only_in_a_table_cell_is_answered_and_cited_in_every_format(
    engine_factory,  # type: ignore[no-untyped-def]
) -> None:
    engine = engine_factory("sqlite://")
    for name, data in TABLE_DOCS.items():
        assert engine.ingest_bytes(data, name).status == "added", name
    for question, name, fact in TABLE_QUESTIONS:
        done, _ = chat(engine, question)
        assert not done.refused, question
        cited = [c.chunk for c in done.citations]
        assert cited and cited[0].document_name == name, (question, done.answer)
        # the cited passage holds the cell with its column header
        header = {"routers.docx": "Ethernet ports: ", "pumps.html": "Maximum flow: ",
                  "trains.md": "Platform: ", "boilers.pdf": "Service interval: "}[name]  # fmt: skip
        assert re.search(re.escape(header) + r"[^|]*" + re.escape(fact), cited[0].text), cited[0]
        assert fact.lower() in done.answer.lower(), (question, done.answer)
        if name == "boilers.pdf":
            assert cited[0].page == 1

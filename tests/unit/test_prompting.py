from rag_core.prompting import build_messages, is_not_found, markers_in, strip_markers
from rag_core.types import Chunk, Hit, Turn


def hit(n: int, text: str, page: int | None = None) -> Hit:
    return Hit(Chunk(f"c{n}", "d", "guide.pdf", "v", n, text, 0, len(text), page=page), n, 1.0)


def test_passages_are_numbered_with_their_source() -> None:
    msgs = build_messages(
        "How long?", [hit(1, "Refunds within 30 days.", page=3), hit(2, "Other.")]
    )
    assert msgs[0].role == "system" and "NOT FOUND" in msgs[0].content
    user = msgs[-1].content
    assert "[1] (guide.pdf, p. 3) Refunds within 30 days." in user
    assert "[2] (guide.pdf) Other." in user
    assert user.rstrip().endswith("Question: How long?")


def test_history_is_included_without_old_markers() -> None:
    msgs = build_messages("And then?", [hit(1, "x")], [Turn("First?", "Yes [1].")])
    assert [m.role for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[2].content == "Yes."


def test_markers_are_parsed_in_every_form_small_models_write() -> None:
    assert markers_in("A [2]. B [1, 3]. C [^4] and [ 2 ] again [12]") == [2, 1, 3, 4, 12]
    assert markers_in("no markers [a] [] here") == []
    assert strip_markers("Refunds take 30 days [1][2].") == "Refunds take 30 days."


def test_not_found_detection() -> None:
    assert is_not_found("NOT FOUND")
    assert is_not_found("  not found.")
    assert is_not_found("NOT FOUND in the passages")
    assert not is_not_found("The file was not found in the archive [1].")

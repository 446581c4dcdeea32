"""docs/comparison.md is generated from the stored results, never edited by hand."""

from __future__ import annotations

from benchmarks.comparison_doc import DATA, PAGE, render


def test_the_comparison_page_is_what_the_stored_results_generate() -> None:
    assert PAGE.read_text() == render(DATA, DATA.name), (
        "docs/comparison.md differs from what its JSON generates: "
        "run python benchmarks/comparison_doc.py --from-json"
    )


def test_every_plot_the_page_shows_exists() -> None:
    text = PAGE.read_text()
    for png in sorted(DATA.glob("*.png")):
        assert f"({DATA.name}/{png.name})" in text
    assert "(comparison/" in text
    assert all((PAGE.parent / link).is_file() for link in _images(text))


def _images(text: str) -> list[str]:
    links = []
    for line in text.splitlines():
        if line.startswith("![") and line.endswith(")"):
            links.append(line[line.rindex("(") + 1 : -1])
    return links


def test_the_page_judges_all_five_shapes() -> None:
    judged = [line for line in PAGE.read_text().splitlines() if line[:3] in _NUMBERS]
    assert [line[:3] for line in judged] == sorted(_NUMBERS)
    for line in judged:
        status = line.split("**: *", 1)[1].split("*.", 1)[0]
        assert status in {"reproduced", "partly reproduced", "not reproduced"}, line


_NUMBERS = {f"{n}. " for n in range(1, 6)}

"""Reading a rendered study report back in tests: its tables as rows of cell texts."""

from __future__ import annotations

from html.parser import HTMLParser


class _Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self._cell: list[str] | None = None
        self._caption: list[str] | None = None

    def handle_starttag(self, tag: str, attrs) -> None:  # noqa: ANN001
        if tag == "table":
            self.tables.append({"caption": "", "rows": []})
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = []
        elif tag == "caption":
            self._caption = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1]["rows"][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "caption" and self._caption is not None:
            self.tables[-1]["caption"] = "".join(self._caption).strip()
            self._caption = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        elif self._caption is not None:
            self._caption.append(data)


def tables(html: str) -> list[dict]:
    """Every table of the page: ``{"caption", "rows"}``, the first row its header, cells as text."""
    parser = _Tables()
    parser.feed(html)
    return parser.tables


def table(html: str, first_header: str, caption: str | None = None) -> list[list[str]]:
    """The rows (header first) of the first table whose first header cell is ``first_header``."""
    for t in tables(html):
        if t["rows"] and t["rows"][0] and t["rows"][0][0] == first_header and (caption is None or t["caption"] == caption):
            return t["rows"]
    raise AssertionError(f"no table headed {first_header!r}" + (f" with caption {caption!r}" if caption else ""))


def paper_rows(html: str) -> dict[str, list[str]]:
    """The report's table of our numbers next to the paper's, by claim: [claim, paper, ours, agrees, comparable?]."""
    return {row[0]: row for row in table(html, "claim (paper)")[1:]}

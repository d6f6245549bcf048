"""The content of a report page as data, rendered to one self-contained HTML file by Jinja2.

A study's report section fills a :class:`Page` with blocks (headings, paragraphs, tables,
figures, folded details, notices) and never writes HTML; :func:`render` turns the blocks into the
page through ``templates/report.html.j2``, escaping every text. Figures are plotly figures; the
first one on the page carries plotly.js inline (so the page opens offline, with no CDN) and the
others reuse it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from fsnlab.study.manifest import StudyError

TEMPLATE = "report.html.j2"


@dataclass(frozen=True)
class Verdict:
    """A table cell that answers "does ours agree with the paper?": ``ok`` None for "no answer";
    ``comparable`` False greys the answer out."""

    ok: bool | None
    comparable: bool = True


def verdict(ok: bool | None, comparable: bool = True) -> Verdict:
    """A :class:`Verdict` cell."""
    return Verdict(None if ok is None else bool(ok), comparable)


@dataclass
class Block:
    """One piece of a page; ``kind`` selects its form in the template."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["data"][name]
        except KeyError:
            raise AttributeError(name) from None


class Page:
    """The blocks of a report page, in order."""

    def __init__(self, title: str = "") -> None:
        self.title = title
        self.blocks: list[Block] = []

    def add(self, kind: str, **data: Any) -> None:
        self.blocks.append(Block(kind, data))

    def h(self, level: int, text: str) -> None:
        self.add("heading", level=int(level), text=text)

    def p(self, text: str, cls: str | None = None) -> None:
        self.add("paragraph", text=text, cls=cls)

    def note(self, text: str) -> None:
        """A paragraph in the small grey style of explanations."""
        self.p(text, cls="note")

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]], caption: str | None = None,
              left: int = 1) -> None:
        """A table; its first ``left`` columns are left-aligned (labels), the rest right-aligned."""
        self.add("table", headers=list(headers), rows=[list(r) for r in rows], caption=caption, left=left)

    def figure(self, fig: Any) -> None:
        self.add("figure", figure=fig)

    def details(self, summary: str, content: str) -> None:
        """Folded preformatted text."""
        self.add("details", summary=summary, content=content)

    def extend(self, other: "Page") -> None:
        """Append the blocks of another page (a section built ahead of where it is shown)."""
        self.blocks.extend(other.blocks)


def _environment() -> Any:
    try:
        import jinja2
    except ImportError:
        raise StudyError("the study report needs jinja2: pip install 'fsnlab[studies]'") from None
    env = jinja2.Environment(loader=jinja2.PackageLoader("fsnlab.study", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.tests["verdict"] = lambda value: isinstance(value, Verdict)
    return env


def render(page: Page) -> str:
    """The page as one HTML document."""
    from markupsafe import Markup

    blocks, plotly_included = [], False
    for block in page.blocks:
        if block.kind == "figure":
            html = block.figure.to_html(full_html=False, include_plotlyjs=not plotly_included, config={"responsive": True})
            plotly_included = True
            block = Block("figure", {"html": Markup(html)})
        blocks.append(block)
    return _environment().get_template(TEMPLATE).render(title=page.title, blocks=blocks)


__all__ = ["Block", "Page", "Verdict", "render", "verdict"]

"""The tables of docs/quality.md, generated from the committed data: ``python -m fsnlab.study.docs``.

A generated table sits between two marker comments, so the prose around it stays hand-written::

    <!-- generated: quality-table protocol=tiny-long variants=fsn:angle-lr10,fsn:tied -->
    | variant | ... |
    <!-- end generated -->

The first word after ``generated:`` names the block, the ``key=value`` words are its arguments:

* ``quality-table protocol=P [variants=A,B]``: final val bpc per (variant, lr) of the sweep's
  records ``studies/results/quality-P.jsonl``, with the gap to the best transformer (``variants``:
  only these, and the transformer's rows);
* ``quality-lr-grid protocol=P``: the FSN's angle and scalar LR switches against the peak LR;
* ``regime-ladder [path=studies/results/regime_ladder.nc]``: the regime ladder's summary
  (:func:`fsnlab.study.regime.markdown_summary`) from its committed dataset.

``python -m fsnlab.study.docs`` rewrites every block of docs/quality.md (run it from the repository
root, or pass ``--root``); ``--check`` only says which blocks differ from the data (exit 1).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from fsnlab.errors import FsnlabError, one_line
from fsnlab.study.manifest import StudyError

if TYPE_CHECKING:
    import xarray as xr

DEFAULT_DOC = Path("docs") / "quality.md"
RESULTS = Path("studies") / "results"
REGIME_DATASET = RESULTS / "regime_ladder.nc"
END = "<!-- end generated -->"
_BLOCK = re.compile(r"<!-- generated: (?P<spec>[^>]*?) -->\n(?P<body>.*?)" + re.escape(END), re.DOTALL)


@dataclass(frozen=True)
class Block:
    """One generated block of a page: its name, arguments and current body (the text between the markers)."""

    name: str
    args: dict[str, str]
    body: str
    start: int  # offset of the body in the page
    end: int

    @property
    def spec(self) -> str:
        return " ".join([self.name] + [f"{k}={v}" for k, v in self.args.items()])


def _parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    words = spec.split()
    if not words:
        raise StudyError("a generated block without a name (<!-- generated: NAME ... -->)")
    args = {}
    for word in words[1:]:
        key, sep, value = word.partition("=")
        if not sep:
            raise StudyError(f"generated block {words[0]}: argument {word!r} is not KEY=VALUE")
        args[key] = value
    return words[0], args


def blocks(text: str) -> list[Block]:
    """The generated blocks of ``text``, in order; a start marker without its end is an error."""
    found = []
    for m in _BLOCK.finditer(text):
        name, args = _parse_spec(m.group("spec"))
        found.append(Block(name, args, m.group("body"), m.start("body"), m.end("body")))
    starts = text.count("<!-- generated:")
    if starts != len(found) or text.count(END) != len(found):
        raise StudyError(f"unbalanced generated-block markers: {starts} starts, {text.count(END)} ends, {len(found)} pairs")
    return found


# -- the blocks -----------------------------------------------------------------------------------------------


def _records(root: Path, protocol: str) -> xr.Dataset:
    from fsnlab.study.quality import get_protocol
    from fsnlab.study.records import RecordStore, records_dataset

    get_protocol(protocol)
    store = RecordStore(root / RESULTS)
    if not store.path(protocol).is_file():
        raise StudyError(f"no records for protocol {protocol}: {store.path(protocol)} does not exist")
    return records_dataset(store.load(protocol), root, protocol)


def quality_table(root: Path, protocol: str, variants: str = "") -> str:
    from fsnlab.study.kinds.quality_sweep import final_markdown

    only = [v for v in variants.split(",") if v] or None
    return final_markdown(_records(root, protocol), only)


def quality_lr_grid(root: Path, protocol: str) -> str:
    from fsnlab.study.kinds.quality_sweep import lr_grid_markdown

    return lr_grid_markdown(_records(root, protocol), protocol)


def regime_ladder(root: Path, path: str = str(REGIME_DATASET)) -> str:
    from fsnlab.study.dataset import open_study
    from fsnlab.study.regime import markdown_summary

    dataset = root / path
    if not dataset.is_file():
        raise StudyError(f"the regime ladder's dataset {dataset} does not exist yet (commit the study's study.nc there)")
    return markdown_summary(open_study(dataset)).strip()


RENDERERS: dict[str, Callable[..., str]] = {
    "quality-table": quality_table,
    "quality-lr-grid": quality_lr_grid,
    "regime-ladder": regime_ladder,
}


def render(block: Block, root: str | Path) -> str:
    """The body ``block`` should have: its table from the data under ``root``, and a newline."""
    if block.name not in RENDERERS:
        raise StudyError(f"unknown generated block {block.name!r}; known: {', '.join(RENDERERS)}")
    try:
        return RENDERERS[block.name](Path(root), **block.args).rstrip("\n") + "\n"
    except TypeError as exc:
        raise StudyError(f"generated block {block.spec}: {exc}") from None


def regenerate(text: str, root: str | Path) -> str:
    """``text`` with the body of every generated block rendered from the data; the rest unchanged."""
    out, pos = [], 0
    for block in blocks(text):
        out += [text[pos:block.start], render(block, root)]
        pos = block.end
    return "".join(out) + text[pos:]


def stale(text: str, root: str | Path) -> list[str]:
    """The specs of the blocks of ``text`` whose body differs from the data."""
    return [b.spec for b in blocks(text) if b.body != render(b, root)]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fsnlab.study.docs", description=__doc__.split("\n\n")[0])
    ap.add_argument("docs", nargs="*", help=f"pages to regenerate (default {DEFAULT_DOC})")
    ap.add_argument("--root", default=".", help="the repository root the data paths are relative to (default: .)")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if a block differs from the data")
    args = ap.parse_args(argv)
    root = Path(args.root)
    code = 0
    try:
        for doc in [Path(d) for d in args.docs] or [root / DEFAULT_DOC]:
            if not doc.is_file():
                raise StudyError(f"{doc} does not exist (run from the repository root, or pass --root)")
            text = doc.read_text(encoding="utf-8")
            if args.check:
                for spec in stale(text, root):
                    print(f"{doc}: block '{spec}' differs from the data", file=sys.stderr)
                    code = 1
                continue
            new = regenerate(text, root)
            if new != text:
                doc.write_text(new, encoding="utf-8")
            print(f"{doc}: {len(blocks(text))} generated blocks, {'rewritten' if new != text else 'up to date'}")
    except FsnlabError as exc:
        print(f"docs: error: {one_line(exc)}", file=sys.stderr)
        return 2
    return code


__all__ = ["RENDERERS", "Block", "blocks", "main", "regenerate", "render", "stale"]


if __name__ == "__main__":
    raise SystemExit(main())

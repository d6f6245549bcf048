"""Command-line options generated from a dataclass: one ``--flag`` per field, its help the field's doc.

A config dataclass documents each field with a trailing comment (or an attribute docstring)::

    @dataclass
    class TrainConfig:
        lr: float = 1e-2  # peak LR

and :func:`add_dataclass_arguments` turns it into ``--lr X  peak LR (default: 0.01)``. The flag is
the field's name with ``-`` for ``_``; its type, default and help come from the field, so a new
field needs no edit of the command line. What a command adds by hand is only what the dataclass
cannot say: an alias (``--model`` for ``model_overrides``), a metavar, a converter (``all`` meaning
None). :func:`dataclass_values` reads the parsed options back as the dataclass's keyword arguments.

Types: ``int``, ``float``, ``str`` (``X | None`` also takes ``none``); ``bool`` becomes
``--flag/--no-flag``; ``list[X]`` and ``tuple[X, ...]`` a repeatable flag; ``Literal[...]`` a
choice; ``dict[str, Any]`` a repeatable ``KEY=VALUE`` (values parsed as JSON when they can be).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import json
import textwrap
import tokenize
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fsnlab.errors import ConfigError

__all__ = [
    "add_dataclass_arguments", "dataclass_values", "field_docs", "flag", "format_default", "parse_overrides",
]

Converter = Callable[[str], Any]


def flag(name: str) -> str:
    """``"max_steps"`` -> ``"--max-steps"``."""
    return "--" + name.replace("_", "-")


# -- the docs of the fields -------------------------------------------------------------------------


def field_docs(cls: type) -> dict[str, str]:
    """Each field's doc: its trailing ``# comment``, or the string statement right after it (an
    attribute docstring, which wins). Fields of dataclass bases are included; a class whose source
    cannot be read gives no docs (an empty help, never an error)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            docs.update(_own_field_docs(klass))
    return docs


def _own_field_docs(cls: type) -> dict[str, str]:
    try:
        source = textwrap.dedent(inspect.getsource(cls))
        tree = ast.parse(source)
        comments = {
            tok.start[0]: tok.string.lstrip("#").strip()
            for tok in tokenize.generate_tokens(io.StringIO(source).readline)
            if tok.type == tokenize.COMMENT
        }
    except (OSError, TypeError, SyntaxError, tokenize.TokenError):
        return {}
    body = next((n.body for n in tree.body if isinstance(n, ast.ClassDef)), [])
    docs: dict[str, str] = {}
    for i, node in enumerate(body):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        end = node.end_lineno or node.lineno
        text = next((comments[line] for line in range(node.lineno, end + 1) if line in comments), "")
        after = body[i + 1] if i + 1 < len(body) else None
        if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):
            text = " ".join(inspect.cleandoc(after.value.value).split())
        if text:
            docs[node.target.id] = text
    return docs


# -- types ------------------------------------------------------------------------------------------


def _optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` -> ``(X, True)``; anything else -> ``(tp, False)``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) < len(typing.get_args(tp)):
            return (args[0] if len(args) == 1 else str), True  # X | Y | None: taken as text
    return tp, False


def _scalar(tp: Any, optional: bool) -> Converter:
    """A converter for one value of a scalar type, named as argparse names it in an error
    (``invalid int value: 'x'``); an optional one takes ``none`` for None."""
    base: Converter = tp if tp in (int, float, str) else str

    def convert(text: str) -> Any:
        if optional and text.lower() == "none":
            return None
        return base(text)

    convert.__name__ = getattr(base, "__name__", "value")
    return convert


def _infer(tp: Any) -> dict[str, Any]:
    """The argparse keywords a field's type implies."""
    tp, optional = _optional(tp)
    origin = typing.get_origin(tp)
    if tp is bool:
        return {"action": argparse.BooleanOptionalAction}
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        return {"choices": choices, "type": type(choices[0]) if choices else str}
    if origin is dict:
        return {"action": "append", "metavar": "KEY=VALUE"}
    if origin in (list, tuple, set, frozenset):
        item = next((a for a in typing.get_args(tp) if a is not Ellipsis), str)
        return {"action": "append", "type": _scalar(item, False), "metavar": _METAVARS.get(item)}
    return {"type": _scalar(tp, optional), "metavar": _METAVARS.get(tp)}


_METAVARS: dict[Any, str] = {int: "N", float: "X"}  # a str option's metavar is its name, e.g. PRESET


def _is_mapping_field(tp: Any) -> bool:
    return typing.get_origin(_optional(tp)[0]) is dict


def _is_sequence_field(tp: Any) -> bool:
    return typing.get_origin(_optional(tp)[0]) in (list, tuple, set, frozenset)


# -- help -------------------------------------------------------------------------------------------


def format_default(value: Any) -> str:
    """A default as the help shows it: ``on``/``off``, ``none``, ``0.01``, ``a,b``."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None or (isinstance(value, (dict, list, tuple, set, frozenset)) and not value):
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return ",".join(str(v) for v in value)
    return str(value)


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


def _help(doc: str, default: Any) -> str:
    """The field's doc with its default appended, unless the doc already speaks of its default."""
    text = doc.replace("%", "%%")  # argparse formats help with %
    if default is dataclasses.MISSING or "default" in doc.lower():
        return text
    shown = format_default(default).replace("%", "%%")
    return f"{text} (default: {shown})" if text else f"default: {shown}"


# -- building the parser and reading it back --------------------------------------------------------


def add_dataclass_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    exclude: Iterable[str] = (),
    defaults: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    suppress: bool = False,
    negatable: bool = True,
) -> dict[str, str]:
    """Add one option per field of the dataclass ``cls`` (but ``exclude``) to ``parser``.

    ``defaults``: the command's default for a field where it differs from the dataclass's (shown in
    the help and set on the namespace). ``overrides``: per field, argparse keywords that replace the
    inferred ones; ``"flags"`` gives the option strings (the first is listed first, e.g.
    ``("--model", "--model-overrides")``). ``suppress``: leave fields that are not given off the
    namespace, so that :func:`dataclass_values` returns only what was typed (a resumed run is checked
    against exactly those). ``negatable=False``: a bool field that defaults to off is a plain switch
    (``--quiet``) rather than ``--quiet/--no-quiet``. Returns field name -> its main flag.
    """
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    skip = set(exclude)
    defaults = dict(defaults or {})
    overrides = dict(overrides or {})
    unknown = (set(defaults) | set(overrides) | skip) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {', '.join(sorted(unknown))}")
    flags: dict[str, str] = {}
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        default = defaults.get(f.name, _default_of(f))
        kwargs: dict[str, Any] = _infer(hints[f.name])
        if not negatable and hints[f.name] is bool and default is False:
            kwargs["action"] = "store_true"
        kwargs["help"] = _help(docs.get(f.name, ""), default)
        kwargs.update(overrides.get(f.name, {}))
        if kwargs.get("action") == "store_true" and "help" not in overrides.get(f.name, {}):
            kwargs["help"] = _help(docs.get(f.name, ""), dataclasses.MISSING)  # a switch: off unless given
        names = tuple(kwargs.pop("flags", (flag(f.name),)))
        if kwargs.get("action") == "append" and not suppress:
            kwargs["default"] = list(default) if isinstance(default, (list, tuple, set, frozenset)) else []
        else:
            kwargs["default"] = argparse.SUPPRESS if suppress or default is dataclasses.MISSING else default
        if kwargs.get("action") == argparse.BooleanOptionalAction and kwargs["default"] is not argparse.SUPPRESS:
            # BooleanOptionalAction would append its own "(default: ...)"; ours is in the help already
            kwargs["action"] = _BooleanFlag
        parser.add_argument(*names, dest=f.name, **kwargs)
        flags[f.name] = names[0]
    return flags


class _BooleanFlag(argparse.BooleanOptionalAction):
    """``--flag/--no-flag`` whose help states its default itself."""

    def __init__(self, *args: Any, help: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, help=None, **kwargs)
        self.help = help


def dataclass_values(args: argparse.Namespace, cls: type, flags: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The fields of ``cls`` present in ``args``, as keyword arguments of ``cls``: repeated
    ``KEY=VALUE`` options become a dict, repeated options of a tuple field a tuple."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not hasattr(args, f.name):
            continue
        value = getattr(args, f.name)
        tp = hints[f.name]
        if _is_mapping_field(tp) and isinstance(value, list):
            value = parse_overrides(value, (flags or {}).get(f.name, flag(f.name)))
        elif _is_sequence_field(tp) and isinstance(value, list):
            origin = typing.get_origin(_optional(tp)[0])
            value = value if origin is list else origin(value)
        values[f.name] = value
    return values


def parse_overrides(items: Iterable[str], option: str = "--model") -> dict[str, Any]:
    """``["kernel=base", "n_harmonics=2"]`` -> ``{"kernel": "base", "n_harmonics": 2}`` (JSON values
    where valid, else the text); an item without ``=`` is a one-line :class:`ConfigError`."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{option} expects FIELD=VALUE, got {item!r}")
        try:
            overrides[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key.strip()] = raw
    return overrides

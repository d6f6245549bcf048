"""The command-line options generated from the config dataclasses (``fsnlab.commands.options``):
every field of TrainConfig, ProbeOptions and the studies' shared options has a flag, with its doc and
its default in ``--help``, and every field can be set from the command line. The checks iterate the
dataclasses' fields, so a new field is checked without an edit here."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fsnlab.cli import build_parser, main
from fsnlab.commands.options import (
    add_dataclass_arguments,
    dataclass_values,
    field_docs,
    flag,
    format_default,
    parse_overrides,
)
from fsnlab.errors import ConfigError
from fsnlab.probe.options import ProbeOptions
from fsnlab.study.driver import LrOptions, StudyOptions, study_parser
from fsnlab.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def help_blocks(parser: argparse.ArgumentParser, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Option string -> the whole entry of that option in ``parser``'s help (its invocation and
    its help, whitespace collapsed), read from the printed text."""
    monkeypatch.setenv("COLUMNS", "100")
    blocks: dict[str, str] = {}
    current: list[str] = []
    for line in parser.format_help().splitlines() + [""]:
        if line.startswith("  -") or not line.startswith("   "):  # a new entry, or a heading / blank line
            if current:
                text = " ".join(" ".join(current).split())
                for word in text.replace(",", " ").split():
                    if word.startswith("-"):
                        blocks.setdefault(word, text)
            current = [line] if line.startswith("  -") else []
        elif current:
            current.append(line)
    return blocks


def subparser(name: str) -> argparse.ArgumentParser:
    actions = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return actions[0].choices[name]


def check_help_lists_fields(parser: argparse.ArgumentParser, cls: type, monkeypatch: pytest.MonkeyPatch,
                            defaults: dict | None = None, own_help: tuple[str, ...] = ()) -> None:
    """Every field of ``cls`` has its flag in ``parser``'s help, with its doc and its default;
    ``own_help``: fields whose help the command writes itself (it must still state a default)."""
    blocks = help_blocks(parser, monkeypatch)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        name = flag(f.name)
        assert name in blocks, f"{cls.__name__}.{f.name}: no {name} in --help"
        text = blocks[name]
        doc = docs.get(f.name, "")
        assert doc, f"{cls.__name__}.{f.name} has no doc (a trailing # comment or a docstring)"
        if f.name in own_help:
            assert "default" in text, text
            continue
        assert " ".join(doc.split()[:4]) in text, f"{name}: its doc is not in {text!r}"
        if "default" in doc.lower():  # the doc states its default itself
            assert "default" in text, text
        elif parser._option_string_actions[name].nargs == 0 and not isinstance(
                parser._option_string_actions[name], argparse.BooleanOptionalAction):
            pass  # a plain switch (--quiet): off unless given
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            default = (defaults or {}).get(f.name, default)
            assert f"(default: {format_default(default)})" in text, f"{name}: default not in {text!r}"


def test_train_help_lists_every_config_field_with_its_default(monkeypatch):
    check_help_lists_fields(subparser("train"), TrainConfig, monkeypatch)


def test_train_help_shows_named_defaults(monkeypatch):
    blocks = help_blocks(subparser("train"), monkeypatch)
    for option, default in (("--weight-decay", "0.1"), ("--beta1", "0.9"), ("--beta2", "0.95"), ("--eps", "1e-08"),
                            ("--grad-clip", "1"), ("--warmup-frac", "0.02"), ("--min-lr-ratio", "0.1"),
                            ("--lr", "0.01"), ("--max-steps", "500"), ("--compile", "off")):
        assert f"(default: {default})" in blocks[option], blocks[option]
    assert "--model-overrides" in blocks["--model"]  # the alias and the field's own name, one entry


def test_probe_help_lists_every_option_field(monkeypatch):
    from fsnlab.commands.probe import CLI_DEFAULTS

    check_help_lists_fields(subparser("probe"), ProbeOptions, monkeypatch, CLI_DEFAULTS,
                            own_help=("stride", "identity_positions"))


@pytest.mark.parametrize("cls", [StudyOptions, LrOptions])
def test_study_help_lists_every_shared_option(cls, monkeypatch):
    spec = importlib.util.spec_from_file_location("fsnlab_cli_options_matched_budget", ROOT / "studies" / "matched_budget.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # so that its Options' source can be read
    spec.loader.exec_module(module)
    parser = study_parser(module.KIND, module.__doc__)
    module.add_arguments(parser)
    check_help_lists_fields(parser, cls, monkeypatch)
    check_help_lists_fields(parser, module.Options, monkeypatch)


def _example(name: str, tp: typing.Any, default: typing.Any) -> tuple[list[str], typing.Any]:
    """Command-line words that set field ``name`` of type ``tp`` to a value other than ``default``,
    and that value."""
    if tp is bool:
        return [flag(name) if not default else flag("no_" + name)], not default
    optional = typing.get_origin(tp) in (typing.Union, types.UnionType)
    base = next(a for a in typing.get_args(tp) if a is not type(None)) if optional else tp  # X | None -> X
    if typing.get_origin(base) is dict:
        return [flag(name), "kernel=base", flag(name), "n_harmonics=2"], {"kernel": "base", "n_harmonics": 2}
    value = {int: 7 if default != 7 else 8, float: 0.25 if default != 0.25 else 0.5}.get(base, "x-value")
    return [flag(name), str(value)], value


def test_every_train_config_field_is_reachable():
    """Each TrainConfig field set on the command line arrives as that field's value (and only the
    fields typed arrive: a resumed run is checked against exactly those)."""
    parser = subparser("train")
    hints = typing.get_type_hints(TrainConfig)
    assert dataclass_values(parser.parse_args([]), TrainConfig) == {}
    for f in dataclasses.fields(TrainConfig):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        argv, value = _example(f.name, hints[f.name], default)
        assert dataclass_values(parser.parse_args(argv), TrainConfig) == {f.name: value}, argv


def test_optional_fields_take_none_and_bad_values_are_argparse_errors(capsys):
    parser = subparser("train")
    assert dataclass_values(parser.parse_args(["--context-length", "none"]), TrainConfig) == {"context_length": None}
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["--beta2", "high"])
    assert info.value.code == 2
    assert "argument --beta2: invalid float value: 'high'" in capsys.readouterr().err


def test_bad_range_of_a_new_flag_is_one_line(tmp_path, capsys):
    argv = ["train", "--preset", "fsn-tiny", "--max-steps", "1", "--beta2", "1.5", "--out", str(tmp_path / "r"), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fsnlab train: error: ") and "betas" in err[0]


# -- the helper on its own ------------------------------------------------------------------------


@dataclass
class _Example:
    """A dataclass as a command would declare one."""

    count: int = 3  # how many
    ratio: float | None = None  # a ratio; None: none
    names: list[str] = field(default_factory=list)  # repeatable
    extra: dict[str, typing.Any] = field(default_factory=dict)  # KEY=VALUE pairs
    loud: bool = True
    """say it
    loudly"""
    mode: typing.Literal["a", "b"] = "a"  # one of two; the default is a


def test_field_docs_reads_comments_and_docstrings():
    assert field_docs(_Example) == {
        "count": "how many", "ratio": "a ratio; None: none", "names": "repeatable", "extra": "KEY=VALUE pairs",
        "loud": "say it loudly", "mode": "one of two; the default is a",
    }


def test_generated_options_round_trip(monkeypatch):
    parser = argparse.ArgumentParser()
    flags = add_dataclass_arguments(parser, _Example, overrides={"extra": {"flags": ("--x", "--extra")}})
    assert flags["extra"] == "--x" and flags["count"] == "--count"
    values = dataclass_values(parser.parse_args([]), _Example)
    assert _Example(**values) == _Example()
    argv = ["--count", "5", "--ratio", "0.5", "--names", "a", "--names", "b", "--extra", "k=1", "--x", "s=t",
            "--no-loud", "--mode", "b"]
    assert _Example(**dataclass_values(parser.parse_args(argv), _Example)) == _Example(
        count=5, ratio=0.5, names=["a", "b"], extra={"k": 1, "s": "t"}, loud=False, mode="b")
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "c"])
    blocks = help_blocks(parser, monkeypatch)
    assert "(default: 3)" in blocks["--count"] and "(default: on)" in blocks["--loud"]
    assert "(default: a)" not in blocks["--mode"]  # its doc speaks of its default already


def test_parse_overrides_errors_name_the_flag():
    assert parse_overrides(["a=1", "b=x", "c=[1, 2]"]) == {"a": 1, "b": "x", "c": [1, 2]}
    with pytest.raises(ConfigError, match="--model expects FIELD=VALUE"):
        parse_overrides(["kernel"])

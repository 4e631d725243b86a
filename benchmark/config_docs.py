"""The README's configuration reference, generated from the schema's field metadata, its one source of truth.

Each key's row comes from its :func:`~.config_fields.setting` doc, its default, its allowed range (a numeric key's
declared bounds, the ones the builder checks) and its allowed values (a ``Literal`` or a registry, read now, so a
newly registered strategy or PET method shows up at once); a section's row is its class docstring.
``tests/test_config_docs.py`` fails when the README's section is stale; regenerate it with ``python -m
audio_ticl.benchmark.config_docs --write README.md`` (``--check`` only compares).
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

from .config_build import join
from .config_fields import FINITE, bounds_of, choice_docs_of, choices_of, doc_of
from .config_schema import RunConfig

__all__ = ["START", "END", "PRETRAIN_START", "PRETRAIN_END", "config_reference_markdown",
           "pretrain_reference_markdown", "read_section", "replace_section", "main"]

START = "<!-- config-reference:start -->"
END = "<!-- config-reference:end -->"
PRETRAIN_START = "<!-- pretrain-config-reference:start -->"
PRETRAIN_END = "<!-- pretrain-config-reference:end -->"


def _note(source: str) -> str:
    return (f"<!-- generated from {source} by `python -m audio_ticl.benchmark.config_docs --write README.md`; edit "
            "the field docs there, not this table -->")


def _table(cls: type, source: str) -> str:
    lines = [_note(source), "| key | default | range | meaning |", "|---|---|---|---|"]
    lines += [f"| `{key}` | {default} | {allowed} | {_cell(meaning)} |"
              for key, default, allowed, meaning in _rows(cls, "", ())]
    return "\n".join(lines)


def config_reference_markdown() -> str:
    """The Markdown table of every ``ticl run`` config key (what goes between :data:`START` and :data:`END`)."""
    return _table(RunConfig, "benchmark/config_schema.py")


def pretrain_reference_markdown() -> str:
    """The table of every ``ticl pretrain`` config key (between :data:`PRETRAIN_START` and :data:`PRETRAIN_END`)."""
    from .pretrain.schema import PretrainConfig

    return _table(PretrainConfig, "benchmark/pretrain/schema.py")


def _rows(cls: type, prefix: str, seen: tuple[type, ...]) -> list[tuple[str, str, str, str]]:
    """(key, default, range, meaning) of every field of ``cls``, sections first as a row, then their keys."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        key = join(prefix, f.name)
        hint = _strip_optional(hints[f.name])
        item = typing.get_args(hint)[0] if typing.get_origin(hint) is list else None
        if dataclasses.is_dataclass(hint) and hint not in seen and not _is_optional(hints[f.name]):
            rows.append((key, "", "", _class_doc(hint)))
            rows += _rows(hint, key, seen + (cls, hint))
        elif item is not None and dataclasses.is_dataclass(item):
            rows.append((key, "`[]`", "", f"{_leaf_doc(f, key)}; the keys of each item are below"))
            rows += _rows(item, f"{key}[]", seen + (cls, item))
        else:
            rows.append((key, _default(f), _range(f, hints[f.name]), _with_choices(f, hint, key)))
    return rows


def _range(f: dataclasses.Field, hint: Any) -> str:
    """A numeric key's declared range as the builder's messages word it (``each`` for a list's items, ``or null``
    where null is allowed); empty for a key without one."""
    bounds = bounds_of(f)
    if bounds is None:
        return ""
    items = "each " if typing.get_origin(_strip_optional(hint)) is list else ""
    null = " or null" if _is_optional(hint) else ""
    text = bounds.describe()
    return f"{items}{text if text == FINITE else f'`{text}`'}{null}"


def _leaf_doc(f: dataclasses.Field, key: str) -> str:
    doc = doc_of(f)
    if not doc:
        raise ValueError(f"config key '{key}' has no doc: give its setting(...) a doc=")
    return doc


def _with_choices(f: dataclasses.Field, hint: Any, key: str) -> str:
    """The doc, then the allowed values (explained where ``choice_docs`` says what they mean)."""
    doc = _leaf_doc(f, key)
    choices = choices_of(f)
    if typing.get_origin(hint) is Literal:
        allowed, extra = [str(a) for a in typing.get_args(hint)], ""
    elif choices is not None:
        allowed, extra = choices.allowed(), choices.pattern_doc
    else:
        return doc
    explained = choice_docs_of(f)
    stale = sorted(set(explained) - set(allowed))
    if stale:
        raise ValueError(f"config key '{key}': choice_docs explain {stale}, which are not allowed values {allowed}")
    items = [f"`{a}` ({explained[a]})" if a in explained else f"`{a}`" for a in allowed]
    return f"{doc}; one of " + ", ".join(items) + (f", or {extra}" if extra else "")


def _default(f: dataclasses.Field) -> str:
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        value = f.default
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    return f"`{value!r}`"


def _class_doc(cls: type) -> str:
    first = inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0]
    return " ".join(first.split()).replace("``", "`")


def _strip_optional(hint: Any) -> Any:
    if typing.get_origin(hint) in (Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return inner
    return hint


def _is_optional(hint: Any) -> bool:
    return typing.get_origin(hint) in (Union, types.UnionType) and type(None) in typing.get_args(hint)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def read_section(text: str, start: str = START, end: str = END) -> str:
    """The text between the markers (without them), or a ValueError naming the missing marker."""
    for marker in (start, end):
        if text.count(marker) != 1:
            raise ValueError(f"expected the marker {marker} exactly once, found it {text.count(marker)} times")
    return text.split(start, 1)[1].split(end, 1)[0].strip("\n")


def replace_section(text: str, generated: str, start: str = START, end: str = END) -> str:
    """``text`` with the section between the markers replaced by ``generated``."""
    read_section(text, start, end)  # checks the markers
    head, rest = text.split(start, 1)
    return f"{head}{start}\n{generated}\n{end}{rest.split(end, 1)[1]}"


def _sections() -> list[tuple[str, str, str]]:
    """(start, end, generated) of every generated section of the README."""
    return [(START, END, config_reference_markdown()),
            (PRETRAIN_START, PRETRAIN_END, pretrain_reference_markdown())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audio_ticl.benchmark.config_docs", description=__doc__)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="FILE", type=Path, help="rewrite the section between the markers")
    group.add_argument("--check", metavar="FILE", type=Path, help="exit 1 when the section is not current")
    args = parser.parse_args(argv)
    if args.write:
        text = args.write.read_text()
        for start, end, generated in _sections():
            text = replace_section(text, generated, start, end)
        args.write.write_text(text)
    elif args.check:
        text = args.check.read_text()
        stale = [start for start, end, generated in _sections() if read_section(text, start, end) != generated]
        if stale:
            print(f"{args.check}: the config reference(s) {', '.join(stale)} are stale; run with --write "
                  f"{args.check}", file=sys.stderr)
            return 1
    else:
        for _, _, generated in _sections():
            print(generated, end="\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

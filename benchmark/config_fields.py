"""How a config key is declared: :func:`setting` puts its doc and its allowed values on the dataclass field.

The field metadata is the single source of both the builder's checks (``config_build``) and the README's
configuration reference (``config_docs``), so the two cannot drift apart. A numeric key declares its allowed range
(:class:`Bounds`) the same way, so a negative learning rate or a zero batch size is refused at load time with the
key's name, not as a traceback in the middle of a run. Allowed names that live in a registry
(strategies, PET methods, data sources ...) are read from it when checked, never listed here by hand: a newly
registered name is accepted, and documented, at once.
"""
from __future__ import annotations

import dataclasses
import importlib
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FINITE", "Bounds", "Choices", "from_registry", "setting", "doc_of", "choices_of", "choice_docs_of", "bounds_of"
]


@dataclass(frozen=True)
class Choices:
    """The allowed values of a string key: fixed or registry names, plus values that match ``pattern``."""

    #: the names, or a function returning them (called at each check, so it sees later registrations)
    names: tuple[str, ...] | Callable[[], Iterable[str]] = ()
    #: where the names come from, for messages and docs (e.g. ``audio_ticl.strategies.STRATEGIES``)
    source: str = ""
    #: a regular expression (full match) for the values allowed besides the names
    pattern: str | None = None
    #: the pattern for a reader, e.g. "an import path `pkg.module:Class`"
    pattern_doc: str = ""

    def allowed(self) -> list[str]:
        """The names, in a stable order: as listed when fixed, sorted when read from a registry."""
        return list(self.names) if isinstance(self.names, tuple) else sorted(self.names())

    def accepts(self, value: str) -> bool:
        return value in self.allowed() or (self.pattern is not None and re.fullmatch(self.pattern, value) is not None)

    def expected(self) -> str:
        """What a valid value is, in words, for an error message."""
        text = "one of " + ", ".join(self.allowed())
        if self.source:
            text += f" (registered in {self.source})"
        return text + (f", or {self.pattern_doc}" if self.pattern_doc else "")


def from_registry(spec: str, pattern: str | None = None, pattern_doc: str = "") -> Choices:
    """Choices read from the registry ``module:NAME``: a mapping (its keys) or a function returning the names.

    The module is imported only when the names are needed, so declaring the choice creates no import cycle
    (``strategies`` imports ``benchmark.errors``) and importing the config stays cheap.
    """
    module_name, _, attr = spec.partition(":")

    def names() -> Iterable[str]:
        registry = getattr(importlib.import_module(module_name), attr)
        return registry() if callable(registry) else registry.keys()

    return Choices(names=names, source=f"{module_name}.{attr}", pattern=pattern, pattern_doc=pattern_doc)


#: how a range without limits reads (a numeric key whose only check is being finite)
FINITE = "a finite number"


@dataclass(frozen=True)
class Bounds:
    """The allowed range of a numeric key (each item of a list of numbers): finite, and within the limits given.

    No limit at all still declares the key numeric and checked (e.g. a normalisation mean: any finite number).
    """

    minimum: float | None = None
    maximum: float | None = None
    #: whether the value must differ from the limit (``> minimum`` rather than ``>= minimum``)
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False

    def accepts(self, value: float) -> bool:
        """Written as positive comparisons, so that NaN (which compares false) is refused by any range."""
        if not math.isfinite(value):
            return False
        above = self.minimum is None or (value > self.minimum if self.exclusive_minimum else value >= self.minimum)
        below = self.maximum is None or (value < self.maximum if self.exclusive_maximum else value <= self.maximum)
        return above and below

    def describe(self) -> str:
        """The range in words, as messages and the README show it: ``> 0``, ``>= 1``, ``in [0, 1)``, ``finite``."""
        low, high = self.minimum, self.maximum
        if low is not None and high is not None:
            left, right = "(" if self.exclusive_minimum else "[", ")" if self.exclusive_maximum else "]"
            return f"in {left}{_number(low)}, {_number(high)}{right}"
        if low is not None:
            return f"{'>' if self.exclusive_minimum else '>='} {_number(low)}"
        if high is not None:
            return f"{'<' if self.exclusive_maximum else '<='} {_number(high)}"
        return FINITE


def _number(value: float) -> str:
    """``1`` rather than ``1.0``, so a range reads the same for an integer and a float key."""
    return str(int(value)) if float(value).is_integer() else repr(value)


_NO_DEFAULT: Any = dataclasses.MISSING


def setting(
    default: Any = _NO_DEFAULT,
    *,
    doc: str = "",
    factory: Callable[[], Any] | None = None,
    choices: Choices | None = None,
    choice_docs: dict[str, str] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    exclusive_maximum: bool = False,
    any_number: bool = False,
) -> Any:
    """A config field: ``default`` (or ``factory`` for a mutable one) with its documentation.

    Every leaf key needs a ``doc``; a section (a dataclass-typed field) is documented by its class docstring.

    ``choices`` restricts a string key to registry names or a pattern (``Literal`` annotations cover fixed
    choices); ``choice_docs`` explains some of the allowed values, for the README.

    A numeric key declares its range: ``minimum`` / ``maximum`` (inclusive unless ``exclusive_*``), or
    ``any_number`` for a key whose only check is being finite. ``None`` stays allowed where the annotation is
    ``Optional`` (null means the default or off), so 0 is never needed, nor accepted, as a second way to say it.
    """
    if (exclusive_minimum and minimum is None) or (exclusive_maximum and maximum is None):
        raise ValueError("setting(): an exclusive limit needs the limit itself (minimum= / maximum=)")
    bounds = None
    if any_number or minimum is not None or maximum is not None:
        bounds = Bounds(minimum, maximum, exclusive_minimum, exclusive_maximum)
    metadata = {"doc": doc, "choices": choices, "choice_docs": dict(choice_docs or {}), "bounds": bounds}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def doc_of(f: dataclasses.Field) -> str:
    return f.metadata.get("doc", "")


def choices_of(f: dataclasses.Field) -> Choices | None:
    return f.metadata.get("choices")


def choice_docs_of(f: dataclasses.Field) -> dict[str, str]:
    return f.metadata.get("choice_docs", {})


def bounds_of(f: dataclasses.Field) -> Bounds | None:
    return f.metadata.get("bounds")

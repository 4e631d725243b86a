"""Errors raised by ``models/`` for bad user input (shapes, names, options, task ids).

``ModelError`` subclasses ``ValueError`` so callers that only know the builtins still catch it; the subclasses
also derive from the builtin that Python itself would raise (``KeyError`` for an unknown name or task id,
``TypeError`` for an unknown keyword option). Every message names the value given and what was expected.
"""
from __future__ import annotations


class ModelError(ValueError):
    """A model, mixer or PET method was asked for something it cannot do (wrong shape, bad value)."""


class UnknownNameError(ModelError, KeyError):
    """An unknown model / mixer / PET method name or task id."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0]) if self.args else ""


class UnknownOptionError(ModelError, TypeError):
    """A keyword option that the model / PET method does not have."""

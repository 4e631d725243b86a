"""Errors raised by ``models/`` for bad user input (shapes, names, task ids).

``ModelError`` subclasses ``ValueError`` so callers that only know the builtin still catch it; the message always
names the value that was given and what was expected.
"""
from __future__ import annotations


class ModelError(ValueError):
    """A model, mixer or PET method was asked for something it cannot do (wrong shape, unknown name or task)."""

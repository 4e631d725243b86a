"""The suite's one error hierarchy, rooted here because ``models/`` is the bottom layer (it imports no other package
of the suite, so ``strategies`` and ``benchmark`` can both import this module without a cycle).

:class:`TICLError` marks a failure caused by user input (a config value, a path, a model option): the ``ticl``
command prints its message on one line and exits with status 2, without a traceback. Anything else is a bug and
keeps its traceback.

``ModelError`` also subclasses ``ValueError`` so callers that only know the builtins still catch it; its subclasses
also derive from the builtin that Python itself would raise (``KeyError`` for an unknown name or task id,
``TypeError`` for an unknown keyword option). Every message names the value given and what was expected.
"""
from __future__ import annotations

__all__ = ["TICLError", "ModelError", "UnknownNameError", "UnknownOptionError"]


class TICLError(Exception):
    """Base class for errors caused by user input (config, data, paths, options), shown without a traceback."""


class ModelError(TICLError, ValueError):
    """A model, mixer or PET method was asked for something it cannot do (wrong shape, bad value)."""


class UnknownNameError(ModelError, KeyError):
    """An unknown model / mixer / PET method name or task id."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0]) if self.args else ""


class UnknownOptionError(ModelError, TypeError):
    """A keyword option that the model / PET method does not have."""

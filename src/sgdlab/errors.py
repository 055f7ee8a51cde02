"""The errors sgdlab raises for input a person can fix (the checks that raise them: ``sgdlab.validation``).

Each is a ``ValueError`` so plain ``except ValueError`` code keeps working; the
CLI prints the message on one line and exits 2.
"""


class SgdlabError(ValueError):
    """Base of every error caused by bad input (config, data, files)."""


class ConfigError(SgdlabError):
    """A setting has a value that is not allowed (names the value and the allowed ones)."""


class DataError(SgdlabError):
    """A dataset is missing, corrupt, or inconsistent (shapes, labels, NaN)."""


class CheckpointError(SgdlabError):
    """A model or checkpoint file is truncated, tampered with, or incompatible."""


class ExportError(SgdlabError):
    """A model cannot be written in another format (a layer ONNX export cannot express, a missing package)."""


class RunExistsError(SgdlabError):
    """The run folder exists and neither overwrite nor resume was asked for."""


_MOVED = {"check_number", "check_whole_number"}


def __getattr__(name):
    """``errors.check_number`` / ``check_whole_number`` moved to ``sgdlab.validation`` (deprecated here)."""
    if name not in _MOVED:
        raise AttributeError(f"module 'sgdlab.errors' has no attribute {name!r}")
    import importlib
    import warnings

    warnings.warn(f"sgdlab.errors.{name} moved to sgdlab.validation.{name}", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module("sgdlab.validation"), name)

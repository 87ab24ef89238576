"""The lab's exceptions: one base class, so callers can catch everything the
lab could not do with `except LabError`."""

from __future__ import annotations

__all__ = ["LabError", "BootError", "TruthError", "QMPError"]


class LabError(RuntimeError):
    """Anything the lab could not do."""


class BootError(LabError):
    """A guest did not come up."""


class TruthError(LabError):
    """The in-guest ground-truth agent did not answer as expected."""


class QMPError(LabError):
    """QEMU's QMP returned an error."""

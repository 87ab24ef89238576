"""The lab's exceptions: one base class, so callers can catch everything the
lab could not do with `except LabError`."""

from __future__ import annotations

__all__ = ["LabError", "BootError", "TruthError", "QMPError"]


class LabError(RuntimeError):
    """Anything the lab could not do."""


class BootError(LabError):
    """A guest did not come up. guest_panicked: its kernel panicked while
    booting (the console says so), as opposed to QEMU failing or a timeout."""

    guest_panicked: bool = False


class TruthError(LabError):
    """The in-guest ground-truth agent did not answer as expected."""


class QMPError(LabError):
    """QEMU's QMP returned an error."""

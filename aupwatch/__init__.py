"""aupwatch: a real-time Acceptable Use Policy monitor for marketplace API applications.

The package holds the version, the one error base (:mod:`aupwatch.errors`) and the command
line (:mod:`aupwatch.cli`); the layers live in :mod:`aupwatch.schemas`,
:mod:`aupwatch.detectors` and :mod:`aupwatch.streams` (imports point inward only).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("aupwatch")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

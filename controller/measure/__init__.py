"""measure stage: where measured outcomes come from.

A source is anything with a ``name`` and ``read(vocab, now) -> (SampleSet,
diagnostics)``: measurement files (:mod:`controller.measure.files`),
Prometheus (:mod:`controller.measure.prometheus`) and the built-in probes,
whose results are written as measurement files (:mod:`controller.measure.probes`).
User feedback (surveys) has its own reader (:mod:`controller.measure.feedback`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # the package stays light to import: :mod:`controller.measure.prefetch` starts before numpy
    from controller.errors import Diagnostic
    from controller.measure.samples import SampleSet, Vocabulary


class Source(Protocol):
    """One small interface for every measurement source."""

    @property
    def name(self) -> str: ...

    def read(self, vocab: Vocabulary, now: float) -> tuple[SampleSet, list[Diagnostic]]: ...

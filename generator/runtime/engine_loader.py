"""One way to turn preset names into engines, for the daemon, the live stream and the offline renderer alike.

An :class:`EngineLoader` loads each preset (by name, searched in ``search`` and the shipped presets, or by path)
once, with one set of :class:`EngineOptions`: the live path and its offline replay therefore play a preset with
the same phase, output stage and thread count, and a preset change mid-performance costs its load only once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from generator.runtime.engine import Engine
from generator.runtime.output_stage import OutputSettings


@dataclass(frozen=True)
class EngineOptions:
    """threads: ONNX Runtime threads (None: the engine's default); search: preset folders searched before the
    shipped ones; phase: None plays each preset's own (audio.phase); output: the output stage (None: defaults)."""

    threads: int | None = None
    search: tuple[str | Path, ...] = ()
    phase: str | None = None
    output: OutputSettings | None = None


class EngineLoader:
    """Preset name or path -> Engine, each loaded once. `first` (already loaded) answers to its preset's name."""

    def __init__(self, options: EngineOptions = EngineOptions(), first: Engine | None = None):
        self.options = options
        self._engines: dict[str, Engine] = {}
        if first is not None:
            self._engines[first.preset.name] = first

    def __call__(self, name: str | Path) -> Engine:
        key = str(name)
        if key not in self._engines:
            o = self.options
            engine = Engine.load(name, threads=o.threads, search=tuple(o.search), phase=o.phase, output=o.output)
            self._engines[key] = engine
            self._engines.setdefault(engine.preset.name, engine)
        return self._engines[key]

    @classmethod
    def of(cls, source: Engine | str | Path | Callable[[str], Engine],
           options: EngineOptions = EngineOptions()) -> Callable[[str], Engine]:
        """A loader from what a caller has: a loader as it is, an Engine (answering to its own preset name, others
        loaded with `options`), or a preset name or path (loaded now, so a bad one fails here)."""
        if callable(source) and not isinstance(source, Engine):
            return source
        if isinstance(source, Engine):
            return cls(options, first=source)
        loader = cls(options)
        loader(source)
        return loader

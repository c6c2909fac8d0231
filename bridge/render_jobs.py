"""Offline renders requested over OSC (/musika/render) while the daemon plays: one at a time in a worker thread,
replying progress, done or error to the requester.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bridge.events import RenderRequest
from generator.errors import MusikaError
from generator.runtime.engine_loader import EngineOptions

logger = logging.getLogger(__name__)


class RenderJobs:
    """Offline renders requested over OSC, one at a time in a worker thread, replying to the requester.

    osc: the OscServer (render_progress/render_done/render_error). presets_dirs: extra preset folders. The
    render uses one ONNX thread so the live stream keeps its share of the CPU."""

    def __init__(self, osc: Any, presets_dirs: Sequence[str | Path] = (), threads: int = 1,
                 options: EngineOptions | None = None):
        """`options`: how the daemon loads presets (phase, output stage), so a render plays as the live path;
        its threads are `threads` (renders share the machine with the live path)."""
        self.osc = osc
        self.options = replace(options or EngineOptions(), threads=threads,
                               search=(*(options.search if options else ()), *presets_dirs))
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()
        self.done = 0
        self.failed = 0

    def submit(self, request: RenderRequest) -> None:
        task = asyncio.get_running_loop().create_task(self._run(request), name="musika-render-job")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, req: RenderRequest) -> None:
        loop = asyncio.get_running_loop()
        to = req.reply_to

        def progress(fraction: float) -> None:
            if to is not None:
                loop.call_soon_threadsafe(self.osc.render_progress, to, fraction)

        async with self._lock:
            try:
                out = await asyncio.to_thread(self._render, req.session_path, req.out_dir, progress)
            except MusikaError as exc:
                self.failed += 1
                logger.warning("render of %s failed: %s", req.session_path, exc)
                if to is not None:
                    self.osc.render_error(to, str(exc))
                return
            except Exception as exc:  # a bug must not take the daemon down; report it to the requester
                self.failed += 1
                logger.exception("render of %s failed", req.session_path)
                if to is not None:
                    self.osc.render_error(to, f"internal error: {type(exc).__name__}: {exc}")
                return
        self.done += 1
        logger.info("render of %s done: %s", req.session_path, out)
        if to is not None:
            self.osc.render_done(to, str(out))

    def _render(self, session_path: str, out_dir: str, progress: Callable[[float], None]) -> Path:
        from generator.offline.render import render_session
        from generator.offline.session import load_session

        session = load_session(session_path)
        stems = max(1, len(session.stems))
        done: dict[str, float] = {}

        def on_stage(stem: str, stage: str, step: int, total: int) -> None:
            done[stem] = step / max(total, 1)
            progress(min(1.0, sum(done.values()) / stems))

        result = render_session(session, out_dir, progress=on_stage, options=self.options)
        return Path(result.out_dir)

    async def stop(self, timeout: float = 5.0) -> None:
        """Wait up to ``timeout`` s for a running render (the thread cannot be interrupted)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

"""What `musika serve` runs on, built from musika.toml: the engines (each preset loaded once, the first warmed up),
the audio output, the control log's path; a device or port that cannot be opened becomes DeviceUnavailable.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from bridge.config import Config
from bridge.errors import DeviceUnavailable, MidiPortError
from generator.errors import AudioOutputError
from generator.runtime.engine_loader import EngineOptions
from generator.runtime.output_stage import OutputSettings
from generator.runtime.preset import list_preset_dirs, preset_search_path
from generator.timeline.control_log import SessionHeader
from generator.timeline.live import LiveStream


def preset_names(cfg: Config, current: str) -> list[str]:
    """Installed presets (the search path plus presets_dirs) and the one playing."""
    names = {d.name for root in preset_search_path(cfg.presets_dirs) for d in list_preset_dirs(root)}
    return sorted(names | {current})


def engine_phase(cfg: Config) -> str | None:
    """musika.toml `phase` -> Engine's phase argument ("preset": None, the preset's own)."""
    return None if cfg.phase == "preset" else cfg.phase


def output_settings(cfg: Config) -> OutputSettings:
    """musika.toml [output] loudness_lufs / ceiling_dbtp / gain_db -> the engine's output stage."""
    o = cfg.output
    return OutputSettings(target_lufs=o.loudness_lufs, ceiling_dbtp=o.ceiling_dbtp, gain_db=o.gain_db)


def engine_options(cfg: Config) -> EngineOptions:
    """musika.toml -> how every engine of this session loads (threads, preset folders, phase, output stage)."""
    return EngineOptions(threads=cfg.threads, search=tuple(cfg.presets_dirs), phase=engine_phase(cfg),
                         output=output_settings(cfg))


def warm_up(loader: Any, preset: str, sample_rate: int, pieces: int = 3) -> float:
    """Render a few pieces into a scratch ring so ONNX Runtime has allocated everything before the first play;
    returns the look-ahead (s) that covers the slowest piece twice over (0.3 s at least, 2 s at most)."""
    from bridge.audio import AudioRing

    ring = AudioRing(sample_rate * 10)
    scratch = LiveStream(loader, ring, SessionHeader(preset, 0, 128.0, (4, 4), sample_rate, {}))
    scratch.play(0.0)
    sink = np.zeros((2, sample_rate // 4), np.float32)
    worst, rendered = 0.0, 0
    for _ in range(50):
        if rendered >= pieces:
            break
        ring.read_into(sink, channels_first=True, fill_silence=False)  # no underruns counted: a scratch ring
        t = time.perf_counter()
        if scratch.step():
            worst, rendered = max(worst, time.perf_counter() - t), rendered + 1
    return min(2.0, max(0.3, 2.0 * worst + 0.1))


def open_output(cfg: Config, ring: Any, sample_rate: int) -> Any:
    """Build and start the sink chosen in [output]."""
    from bridge.audio import open_sink

    o, kind = cfg.output, cfg.output.kind
    opts: dict[str, Any] = {"ring": ring, "sample_rate": sample_rate}
    if kind in ("jack", "auto"):
        opts.update(client_name=o.jack_client, connect=list(o.jack_connect) or None)
    if kind in ("portaudio", "auto"):
        opts.update(device=o.device or None, block_size=o.block_size)
    if kind == "reastream":
        opts.update(host=o.reastream_host, port=o.reastream_port, identifier=o.reastream_id, block_size=o.block_size)
    if kind in ("wav", "auto"):
        Path(o.wav_path).parent.mkdir(parents=True, exist_ok=True)
        opts.update(path=o.wav_path, block_size=o.block_size)
    sink = open_sink(kind, **opts)
    sink.start()
    return sink


def describe_sink(sink: Any) -> str:
    if sink.name == "jack":
        return f"jack ({'/'.join(sink.port_names)})"
    return f"{sink.name} ({sink.device})"


def control_log_path(template: str) -> Path | None:
    """paths.control_log with {time} filled in, its folder created; None when empty (logging off)."""
    if not template:
        return None
    path = Path(template.replace("{time}", time.strftime("%Y%m%d-%H%M%S")))
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def device(open_: Any, *extra: type[BaseException]) -> Any:
    """Call ``open_``; a device/port that cannot be opened (or one of ``extra``) becomes DeviceUnavailable (exit
    code 3)."""
    try:
        return open_()
    except (AudioOutputError, MidiPortError, *extra) as exc:
        if isinstance(exc, DeviceUnavailable):
            raise
        raise DeviceUnavailable(str(exc)) from exc


async def adevice(coro: Any, *extra: type[BaseException]) -> None:
    from bridge.osc import OscBindError

    try:
        await coro
    except (OscBindError, *extra) as exc:
        raise DeviceUnavailable(str(exc)) from exc

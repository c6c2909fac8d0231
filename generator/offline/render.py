"""Offline rendering: a session (or a logged live performance) -> tempo-locked stems through effect chains + a mix.

Each stem is played through :func:`generator.timeline.stream.render_offline`, the same planner, tempo lock and
crossfades
as the live path, from its start bar to its end bar on the session's tempo map. Automation becomes control
records at bar lines (what a DAW sending the same curve live would produce). The stem is placed on the session
grid at the model's sample rate, resampled to the output rate, run through its effect chain (which rings on
into later bars), then gain and pan are applied. The mix is the sum of the processed stems; loudness
normalisation and the true-peak ceiling act on the mix only. Every stem file is exactly the session's length
(bars + tail_bars), so all files start at bar 1 and stay in time in a DAW.

Outputs go to ``DIR/.partial-XXXX`` first and are renamed into DIR only when everything succeeded.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from generator.errors import AudioOutputError, ConditioningError
from generator.offline.audio_file import write_audio
from generator.offline.effects import EffectChain
from generator.offline.session import Grid, Session, StemSpec
from generator.offline.spectrogram_png import spectrogram_png
from generator.runtime import mastering
from generator.runtime.engine import Engine
from generator.runtime.engine_loader import EngineLoader, EngineOptions
from generator.runtime.preset import Condition, Preset
from generator.timeline.control_log import ControlRecord, SessionHeader, read_control_log

logger = logging.getLogger(__name__)

Progress = Callable[[str, str, int, int], None]  # (stem name, stage, step done, steps total)
STAGES = ("generate", "effects", "write")


@dataclass(frozen=True)
class StemJob:
    """What renders one stem: the performance (header + records from start_beat to end_beat) and its strip."""

    spec: StemSpec
    engine: Engine
    header: SessionHeader
    records: tuple[ControlRecord, ...]
    start_beat: float
    end_beat: float
    on_grid: bool = True  # False (replay): the audio is kept as played, runs back to back from sample 0
    options: EngineOptions = EngineOptions()  # how presets a replay switches to are loaded (as the first one)


@dataclass
class RenderResult:
    """Files written (final paths), the mix before mastering (channels, samples) and the report (render.json)."""

    out_dir: Path
    stems: dict[str, Path]
    mix: Path
    images: list[Path] = field(default_factory=list)
    premaster: np.ndarray | None = None
    report: dict[str, Any] = field(default_factory=dict)


# -- the seam to the live path -----------------------------------------------------------------------------------
def _render_stem_audio(job: StemJob) -> np.ndarray:
    """The stem's performance -> (2, samples) float32 at the engine's rate, sample 0 = job.start_beat."""
    from generator.timeline.stream import render_offline

    records = [ControlRecord(job.start_beat, "transport", "play", job.start_beat), *job.records]
    load = EngineLoader(job.options, first=job.engine)
    return render_offline(load, job.header, records, end_beat=job.end_beat)


# -- planning (pure) ---------------------------------------------------------------------------------------------
def stem_records(grid: Grid, stem: StemSpec) -> tuple[float, list[ControlRecord]]:
    """Tempo changes and automation of a stem as control records after its start -> (start bpm, records).

    Automation is sampled at every bar line inside the stem (a record only when the value changes), quantised
    to the bar as live control changes are by default."""
    recs: list[ControlRecord] = []
    bpb = grid.beats_per_bar
    for bar, bpm in grid.tempo:
        if stem.start_bar < bar < stem.end_bar:
            recs.append(ControlRecord(grid.bar_to_beat(bar), "tempo", "tempo", bpm))
    for name, auto in sorted(stem.conditioning.items()):
        last = auto.value_at(stem.start_bar)
        for bar in range(stem.start_bar + 1, stem.end_bar):
            v = auto.value_at(bar)
            if v != last:
                recs.append(ControlRecord((bar - 1) * bpb, "control", name, v, "bar"))
                last = v
    order = {"tempo": 0, "control": 1}
    recs.sort(key=lambda r: (r.beat, order[r.type], r.name))
    return grid.bpm_at_bar(stem.start_bar), recs


def _where_it_comes_from(cond: Condition) -> str:
    """One conditioning input as a session author meets it: its range and where its value comes from."""
    if cond.name == "tempo":
        return f"tempo ({cond.min:g}-{cond.max:g} {cond.unit}, from [session] tempo)"
    if cond.kind == "phase":
        return f"{cond.name} (the position in the bar, from the session's bar grid)"
    return f"{cond.name} ({cond.min:g}-{cond.max:g} {cond.unit})"


def unknown_conditioning_message(preset: Preset, name: str) -> str:
    """Why ``name`` cannot be a stem's ``conditioning`` key for ``preset``: what the preset is really conditioned
    on, where each of those values comes from, and which keys a stem may set instead."""
    if name == "tempo":
        problem = "tempo is not set per stem: give [session] tempo (a BPM or [[bar, bpm], ...])"
    elif preset.has_condition(name):
        problem = f"{name!r} follows the session's bar grid and cannot be set per stem"
    else:
        problem = f"preset {preset.name!r} has no conditioning {name!r}"
    inputs = ", ".join(_where_it_comes_from(c) for c in preset.conditioning) or "nothing"
    settable = [c.name for c in preset.controls if c.name != "tempo"]
    if settable:
        remedy = f"set {' or '.join(settable)} here instead"
    else:
        remedy = f"remove this key: {preset.name!r} takes no conditioning per stem"
    return f"{problem}; it is conditioned on {inputs}; {remedy}"


def check_conditioning(stem: StemSpec, engine: Engine, index: int) -> None:
    """Every automated name exists in the preset and stays inside its trained range (before rendering)."""
    preset = engine.preset
    for name, auto in stem.conditioning.items():
        where = f"stems[{index}] ({stem.name}).conditioning.{name}"
        if not preset.has_condition(name) or name == "tempo" or preset.condition(name).kind == "phase":
            raise ConditioningError(f"{where}: {unknown_conditioning_message(preset, name)}")
        try:
            preset.condition(name).check(np.asarray(auto.values))
        except ConditioningError as exc:
            raise ConditioningError(f"{where}: {exc}") from exc


def plan_session(session: Session, options: EngineOptions | None = None) -> list[StemJob]:
    """Load each stem's preset (cached; `options`: threads, preset folders, phase, output stage, as the daemon's),
    check its conditioning and build its job; raises before any audio."""
    options = options or EngineOptions()
    load = EngineLoader(options)
    jobs = []
    for i, stem in enumerate(session.stems):
        engine = load(stem.preset)
        check_conditioning(stem, engine, i)
        tempo = engine.preset.condition("tempo") if engine.preset.has_condition("tempo") else None
        if tempo is not None and any(not tempo.min <= bpm <= tempo.max for _, bpm in session.grid.tempo):
            logger.warning("stem %s: session tempo outside preset %s's range %g..%g BPM; the model is conditioned "
                           "on the nearest trained tempo and stretched", stem.name, engine.preset.name,
                           tempo.min, tempo.max)
        bpm, recs = stem_records(session.grid, stem)
        controls = {k: a.value_at(stem.start_bar) for k, a in stem.conditioning.items()}
        if stem.variation is not None:
            controls["variation"] = stem.variation
        header = SessionHeader(preset=engine.preset.name, seed=stem.seed, bpm=bpm, meter=session.grid.meter,
                               sample_rate=engine.config.audio.sample_rate, controls=controls)
        jobs.append(StemJob(stem, engine, header, tuple(recs), session.grid.bar_to_beat(stem.start_bar),
                            session.grid.bar_to_beat(stem.end_bar), options=options))
    return jobs


def plan_replay(log: str | Path, session: Session | None = None, tail_bars: int = 4,
                options: EngineOptions | None = None) -> tuple[Session, list[StemJob]]:
    """A control log -> (session describing the output, one job: the performance as heard live).

    The performance ends at its last stop record, else `tail_bars` bars after the bar of its last record.
    With a session, its output and mix settings apply, and the effects, gain and pan of its stem whose
    preset is the log's starting preset (by name) or else of its first stem."""
    header, records = read_control_log(log)
    options = options or EngineOptions()
    engine = EngineLoader(options)(header.preset)
    grid = Grid(((1, float(header.bpm)),), tuple(header.meter))
    bpb = grid.beats_per_bar
    stops = [r.beat for r in records if r.type == "transport" and r.name == "stop"]
    last = max([0.0, *(r.beat for r in records)])
    end_beat = stops[-1] if stops and stops[-1] >= last else (math.floor(last / bpb) + tail_bars) * bpb
    bars = max(1, math.ceil(end_beat / bpb - 1e-9))
    template = StemSpec(name=_safe_name(header.preset), preset=header.preset)
    match = [s for s in session.stems if Path(s.preset).name == header.preset] or list(session.stems) \
        if session is not None else []
    if match:
        template = replace(match[0], name=_safe_name(header.preset), preset=header.preset, conditioning={})
    stem = replace(template, start_bar=1, end_bar=bars + 1)
    base = session if session is not None else Session(path=None, grid=grid, bars=bars, stems=())
    out_session = replace(base, path=Path(log), grid=grid, bars=bars, stems=(stem,))
    first = records[0] if records else None
    start = float(first.value or 0.0) if first and first.type == "transport" else 0.0
    recs = tuple(r for r in records if not (r is first and r.type == "transport"))
    hdr = replace(header, preset=engine.preset.name)
    return out_session, [StemJob(stem, engine, hdr, recs, start, end_beat, on_grid=False, options=options)]


def _safe_name(name: str) -> str:
    s = "".join(ch if ch.isalnum() or ch in "_.-" else "_" for ch in Path(name).name)[:64]
    return s if s and s != "mix" else "performance"


# -- audio -------------------------------------------------------------------------------------------------------
def pan_gains(pan: float) -> tuple[float, float]:
    """Equal-power stereo balance: pan -1..1 -> (left, right) gains; (1, 1) at the centre."""
    theta = (pan + 1.0) * math.pi / 4.0
    return math.sqrt(2.0) * math.cos(theta), math.sqrt(2.0) * math.sin(theta)


def place_on_grid(audio: np.ndarray, start: int, stop: int, total: int) -> np.ndarray:
    """(2, n) audio -> (2, total) zeros with audio[:, :stop - start] at [start, stop) (padded/cut to fit)."""
    out = np.zeros((2, total), np.float32)
    n = max(0, min(stop - start, audio.shape[1], total - start))
    out[:, start : start + n] = audio[:, :n]
    return out


def render_stem(job: StemJob, grid: Grid, total_bars: int, sample_rate: int, chain: EffectChain,
                progress: Progress | None = None) -> np.ndarray:
    """One stem, processed: (2, session samples at `sample_rate`) float32."""
    spec = job.spec
    if progress:
        progress(spec.name, "generate", 0, len(STAGES))
    sr_model = job.engine.config.audio.sample_rate
    audio = _render_stem_audio(job)
    if job.on_grid:
        n_model = grid.sample_at_bar(total_bars + 1, sr_model)
        a, b = grid.sample_at_bar(spec.start_bar, sr_model), grid.sample_at_bar(spec.end_bar, sr_model)
        audio = place_on_grid(audio, a, b, n_model)
        n_out = grid.sample_at_bar(total_bars + 1, sample_rate)
    else:
        n_out = int(round(audio.shape[1] * sample_rate / sr_model))
    if progress:
        progress(spec.name, "effects", 1, len(STAGES))
    x = mastering.resample(audio, sr_model, sample_rate)
    x = place_on_grid(x, 0, n_out, n_out)
    x = chain.process(x)
    gl, gr = pan_gains(spec.pan)
    g = 10.0 ** (spec.gain_db / 20.0)
    x[0] *= np.float32(g * gl)
    x[1] *= np.float32(g * gr)
    return x


# -- files -------------------------------------------------------------------------------------------------------
def write_spectrogram(path: Path, audio: np.ndarray, sample_rate: int, title: str, bar_s: list[float]) -> Path:
    """The spectrogram PNG of a rendered file, with bar lines (generator.offline.spectrogram_png)."""
    return spectrogram_png(path, [(title, audio)], bar_s=bar_s, sample_rate=sample_rate)


def _level_db(x: np.ndarray) -> float:
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    return round(20 * math.log10(peak), 2) if peak > 0 else -math.inf


def render_jobs(session: Session, jobs: list[StemJob], out_dir: str | Path, progress: Progress | None = None,
                ) -> RenderResult:
    """Render planned jobs into `out_dir` atomically (see module docs) -> RenderResult."""
    out = session.output
    sr = out.sample_rate
    chains = [EffectChain(j.spec.effects, sr, session.base_dir()) for j in jobs]  # fail before any audio
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=out_dir))
    except OSError as exc:
        raise AudioOutputError(f"cannot create the output folder {out_dir}: {exc}; choose another --out") from exc
    total_bars = session.total_bars
    n = session.grid.sample_at_bar(total_bars + 1, sr)
    bar_s = [session.grid.seconds_at_bar(b) for b in range(1, total_bars + 2)]
    report: dict[str, Any] = {
        "session": str(session.path) if session.path else None, "sample_rate": sr, "bits": out.bits,
        "format": out.format, "bars": session.bars, "tail_bars": out.tail_bars, "samples": n,
        "bar_starts": [session.grid.sample_at_bar(b, sr) for b in range(1, total_bars + 2)], "stems": {},
    }
    names: list[str] = []
    try:
        mix: np.ndarray | None = None
        for job, chain in zip(jobs, chains, strict=True):
            t0 = time.perf_counter()
            x = render_stem(job, session.grid, total_bars, sr, chain, progress)
            elapsed = time.perf_counter() - t0
            if mix is None:
                mix = np.zeros(x.shape, np.float64)
            mix[:, : x.shape[1]] += x[:, : mix.shape[1]]
            if progress:
                progress(job.spec.name, "write", 2, len(STAGES))
            names += _write(partial, job.spec.name, x, session, bar_s)
            played = (session.grid.seconds_at_bar(job.spec.end_bar) - session.grid.seconds_at_bar(job.spec.start_bar)
                      if job.on_grid else x.shape[1] / sr)
            report["stems"][job.spec.name] = {
                "file": f"{job.spec.name}.{out.format}", "preset": job.engine.preset.name, "seed": job.header.seed,
                "peak_db": _level_db(x), "render_seconds": round(elapsed, 3),
                "realtime_factor": round(played / elapsed, 2) if elapsed > 0 else None,
            }
            if progress:
                progress(job.spec.name, "done", 3, len(STAGES))
        premaster = (mix if mix is not None else np.zeros((2, n))).astype(np.float32)
        report["samples"] = premaster.shape[1]
        final = premaster
        if session.mix.lufs is not None or session.mix.true_peak_db is not None:
            final, report["master"] = mastering.master(premaster, sr, session.mix.lufs, session.mix.true_peak_db)
        elif np.abs(premaster).max(initial=0.0) > 1.0 and out.bits != "float":
            logger.warning("the mix peaks above 0 dBFS and will clip in %s-bit files; set [mix] true_peak_db",
                           out.bits)
        names += _write(partial, "mix", final, session, bar_s)
        (partial / "render.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        names.append("render.json")
        for name in names:
            os.replace(partial / name, out_dir / name)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    ext = out.format
    return RenderResult(
        out_dir=out_dir, stems={j.spec.name: out_dir / f"{j.spec.name}.{ext}" for j in jobs},
        mix=out_dir / f"mix.{ext}", images=[out_dir / x for x in names if x.endswith(".png")],
        premaster=premaster, report=report,
    )


def _write(folder: Path, name: str, audio: np.ndarray, session: Session, bar_s: list[float]) -> list[str]:
    out = session.output
    files = [f"{name}.{out.format}"]
    write_audio(folder / files[0], audio, out.sample_rate, bits=out.bits)
    if out.spectrograms:
        files.append(f"{name}.png")
        write_spectrogram(folder / files[1], audio, out.sample_rate, name, bar_s)
    return files


def render_session(session: Session, out_dir: str | Path, threads: int | None = None,
                   search: Iterable[str | Path] = (), progress: Progress | None = None,
                   options: EngineOptions | None = None) -> RenderResult:
    """Render every stem of a session and the mix into `out_dir`. `options` (the daemon's, e.g. from musika.toml)
    replace `threads` and `search`, so a render plays each preset with the phase and output stage the live path
    used."""
    options = options or EngineOptions(threads=threads, search=tuple(search))
    return render_jobs(session, plan_session(session, options), out_dir, progress)


def render_replay(log: str | Path, out_dir: str | Path, session: Session | None = None, tail_bars: int = 4,
                  threads: int | None = None, search: Iterable[str | Path] = (),
                  progress: Progress | None = None, options: EngineOptions | None = None) -> RenderResult:
    """Re-render a logged live performance (see :func:`plan_replay`) into `out_dir` (`options` as for
    :func:`render_session`)."""
    options = options or EngineOptions(threads=threads, search=tuple(search))
    out_session, jobs = plan_replay(log, session, tail_bars, options)
    return render_jobs(out_session, jobs, out_dir, progress)

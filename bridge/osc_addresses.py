"""THE one table of Musika Bridge's OSC address space, and the pure decoder derived from it.

Each :class:`OscAddress` row gives the address pattern, its arguments (type, unit, range), help text and the
factory that turns validated arguments into typed events (bridge.events) and replies. The dispatcher
(:func:`decode`), argument validation, docs/OSC.md (:func:`markdown`) and docs/daw/Musika.ReaperOSC
(:func:`reaper_file`) are all derived from :data:`TABLE`. `python -m bridge.osc_addresses [ROOT]` rewrites both
generated files; tests/bridge/test_osc.py checks they are up to date.

Nothing here touches a socket or a clock: the server passes the receive time and the sender in.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bridge import reaper
from bridge.events import (
    ControlEvent,
    Event,
    LearnEvent,
    MeterEvent,
    PresetEvent,
    RenderRequest,
    SeedEvent,
    SyncSourceEvent,
    TempoEvent,
    TransportEvent,
)
from bridge.osc_schema import (
    Arg,
    Context,
    Decoded,
    Factory,
    OscAddress,
    OscInputError,
    ParamSpec,
    Request,
    resolve_inside,
    status_messages,
    validate,
)
from bridge.sync import SYNC_MODES
from generator.timeline.planner import QUANTISE_MODES

__all__ = ["TABLE", "REPLIES", "decode", "find", "markdown", "reaper_file", "write_generated", "Context",
           "Decoded", "OscInputError", "ParamSpec", "status_messages"]

SOURCE = "osc"
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


def find(address: str) -> tuple[OscAddress, dict[str, str]]:
    for row in TABLE:
        m = row.regex.match(address)
        if m:
            return row, m.groupdict()
    raise OscInputError(f"unknown OSC address {address[:80]!r}; see /musika/list or docs/OSC.md")


def decode(address: str, raw_args: Sequence[object], sender: tuple[str, int], time: float,
           ctx: Context) -> Decoded:
    """One OSC message -> events and replies. Raises OscInputError (the server counts and logs it)."""
    row, match = find(address)
    args = validate(row, address, raw_args)
    return row.factory(Request(address, args, match, sender, time, ctx))


# ---- factories ---------------------------------------------------------------------------------------


def _transport(action: str) -> Factory:
    def make(req: Request) -> Decoded:
        if req.args and not req.args[0]:  # button release
            return Decoded()
        return Decoded([TransportEvent(action, SOURCE, req.time)], replies=[("/musika/ack", (req.address,))])
    return make


def _locate(req: Request) -> Decoded:
    return Decoded([TransportEvent("locate", SOURCE, req.time, beat=req.args[0])],
                   echo=[(req.address, req.args)])


def _tempo(req: Request) -> Decoded:
    return Decoded([TempoEvent(req.args[0], SOURCE, req.time)], echo=[(req.address, req.args)])


def _param(req: Request) -> Decoded:
    specs = {p.name: p for p in req.ctx.params()}
    spec = specs.get(req.match["name"])
    if spec is None:
        raise OscInputError(f"{req.address}: unknown parameter {req.match['name']!r}; "
                            f"known: {', '.join(sorted(specs)) or 'none'}")
    q = req.args[1] if len(req.args) > 1 else None
    event = ControlEvent(spec.name, spec.from_normalised(req.args[0]), SOURCE, quantise=q)
    return Decoded([event], echo=[(req.address, req.args[:1])])


def _seed(req: Request) -> Decoded:
    q = req.args[1] if len(req.args) > 1 else None
    return Decoded([SeedEvent(req.args[0], SOURCE, quantise=q)], echo=[(req.address, req.args[:1])])


def _preset(req: Request) -> Decoded:
    name = req.args[0]
    known = list(req.ctx.presets())
    if not _NAME_RE.match(name) or name not in known:
        raise OscInputError(f"/musika/preset: {name!r} is not an installed preset; "
                            f"available: {', '.join(known) or 'none'} (query /musika/list/presets)")
    if "presets" in req.ctx.path_roots:
        resolve_inside(req.ctx, "presets", name)
    q = req.args[1] if len(req.args) > 1 else None
    return Decoded([PresetEvent(name, SOURCE, quantise=q)], echo=[(req.address, req.args[:1])])


def _sync(req: Request) -> Decoded:
    return Decoded([SyncSourceEvent(req.args[0], SOURCE)], echo=[(req.address, req.args)])


def _meter(req: Request) -> Decoded:
    num, den = req.args
    if den not in (1, 2, 4, 8, 16, 32):
        raise OscInputError(f"/musika/meter: denominator {den} is not a power of two 1–32")
    req.ctx.reaper.numerator, req.ctx.reaper.denominator = num, den
    return Decoded([MeterEvent(num, den, SOURCE)], echo=[(req.address, req.args)])


def _learn(req: Request) -> Decoded:
    names = [p.name for p in req.ctx.params()]
    if req.args[0] not in names:
        raise OscInputError(f"/musika/learn: unknown parameter {req.args[0]!r}; known: {', '.join(names)}")
    return Decoded([LearnEvent(req.args[0], SOURCE)], replies=[("/musika/ack", (req.address,))])


def _render(req: Request) -> Decoded:
    session = resolve_inside(req.ctx, "sessions", req.args[0])
    out = resolve_inside(req.ctx, "renders", req.args[1] if len(req.args) > 1 else session.stem)
    return Decoded([RenderRequest(str(session), str(out), reply_to=req.sender)],
                   replies=[("/musika/ack", (req.address,))])


def _status(req: Request) -> Decoded:
    return Decoded(replies=status_messages(req.ctx.status()))


def _subscribe(req: Request) -> Decoded:
    return Decoded(replies=[("/musika/ack", (req.address,))], subscribe_hz=req.args[0] if req.args else 10.0)


def _list_presets(req: Request) -> Decoded:
    return Decoded(replies=[("/musika/list/presets", tuple(req.ctx.presets()))])


def _list_params(req: Request) -> Decoded:
    specs = list(req.ctx.params())
    replies = [("/musika/list/params", tuple(p.name for p in specs))]
    replies += [("/musika/list/param", (p.name, p.minimum, p.maximum, p.default, p.unit)) for p in specs]
    return Decoded(replies=replies)


def _list(req: Request) -> Decoded:
    return Decoded(replies=[("/musika/list", tuple(r.pattern for r in TABLE))])


def _reaper(handler: Callable[[reaper.ReaperState, object, float], list[Event]]) -> Factory:
    def make(req: Request) -> Decoded:
        try:
            return Decoded(list(handler(req.ctx.reaper, req.args[0], req.time)))
        except ValueError as exc:
            raise OscInputError(f"{req.address}: {exc}") from exc
    return make


_T = Arg("press", "t", optional=True)
_Q = Arg("quantise", "s", optional=True, choices=QUANTISE_MODES)
_ON = Arg("on", "t")

TABLE: tuple[OscAddress, ...] = (
    OscAddress("/musika/transport/play", (_T,), "Play from the song start (free-running mode).", _transport("play"),
               "/musika/ack"),
    OscAddress("/musika/transport/stop", (_T,), "Stop.", _transport("stop"), "/musika/ack"),
    OscAddress("/musika/transport/continue", (_T,), "Resume from the current position.", _transport("continue"),
               "/musika/ack"),
    OscAddress("/musika/transport/locate", (Arg("beat", "f", "beats", 0, 1e6),),
               "Jump to a quarter-note beat position.", _locate, "echo"),
    OscAddress("/musika/tempo", (Arg("bpm", "f", "BPM", 20, 300),),
               "Manual tempo (used when no sync source drives it).", _tempo, "echo"),
    OscAddress("/musika/param/{name}", (Arg("value", "f", "normalised", 0, 1), _Q),
               "Set a control (density, variation, gain, ...); 0–1 maps onto the control's range.", _param, "echo"),
    OscAddress("/musika/seed", (Arg("seed", "i", "", 0, 2**31 - 1), _Q), "Fix the random seed.", _seed, "echo"),
    OscAddress("/musika/preset", (Arg("name", "s"), _Q), "Switch preset (crossfade at the next bar by default).",
               _preset, "echo"),
    OscAddress("/musika/sync", (Arg("source", "s", choices=SYNC_MODES),), "Choose the sync source.", _sync,
               "echo"),
    OscAddress("/musika/meter", (Arg("numerator", "i", "", 1, 32), Arg("denominator", "i", "", 1, 32)),
               "Time signature (MIDI clock and Reaper do not carry it).", _meter, "echo"),
    OscAddress("/musika/learn", (Arg("param", "s"),), "MIDI-learn: the next CC that moves binds to this control.",
               _learn, "/musika/ack"),
    OscAddress("/musika/render", (Arg("session", "s", "path"), Arg("out", "s", "path", optional=True)),
               "Offline render of a session file (relative to the sessions directory) into the renders "
               "directory.", _render, "/musika/render/progress f, /musika/render/done s, /musika/render/error s"),
    OscAddress("/musika/status", (), "Query health and telemetry once.", _status,
               "/musika/status, /musika/status/<key>"),
    OscAddress("/musika/subscribe", (Arg("hz", "f", "Hz", 0, 30, optional=True),),
               "Push status to the sender at this rate (default 10 Hz; 0 unsubscribes).", _subscribe,
               "/musika/status at hz"),
    OscAddress("/musika/list", (), "List every address pattern.", _list, "/musika/list s..."),
    OscAddress("/musika/list/presets", (), "List installed presets.", _list_presets, "/musika/list/presets s..."),
    OscAddress("/musika/list/params", (), "List controls and their ranges.", _list_params,
               "/musika/list/params s..., /musika/list/param s f f f s per control"),
    # Reaper's native control-surface feedback (see bridge/reaper.py and docs/daw/reaper.md)
    OscAddress("/tempo/raw", (Arg("bpm", "f", "BPM", 20, 300),), "Reaper: project tempo.",
               _reaper(lambda s, v, t: s.tempo(v, t)), reaper_action="TEMPO f"),
    OscAddress("/play", (_ON,), "Reaper: playing.", _reaper(lambda s, v, t: s.transport("play", v, t)),
               reaper_action="PLAY t"),
    OscAddress("/stop", (_ON,), "Reaper: stopped.", _reaper(lambda s, v, t: s.transport("stop", v, t)),
               reaper_action="STOP t"),
    OscAddress("/pause", (_ON,), "Reaper: paused.", _reaper(lambda s, v, t: s.transport("pause", v, t)),
               reaper_action="PAUSE t"),
    OscAddress("/beat/str", (Arg("position", "s", "bar.beat.hundredths"),), "Reaper: coarse position.",
               _reaper(lambda s, v, t: s.beat_string(v, t)), reaper_action="BEAT s"),
    OscAddress("/time", (Arg("seconds", "f", "s", -1e7, 1e7),), "Reaper: position in seconds (coarse).",
               _reaper(lambda s, v, t: s.seconds(v, t)), reaper_action="TIME f"),
    OscAddress("/samples", (Arg("samples", "f", "samples", -1e12, 1e12),), "Reaper: position in samples.",
               _reaper(lambda s, v, t: s.samples(v, t)), reaper_action="SAMPLES f"),
)

REPLIES = (
    ("/musika/ack", "s address", "A command was accepted (handed to the daemon)."),
    ("/musika/error", "s address, s message", "A message was refused and why (rate-limited)."),
    ("/musika/render/progress", "f fraction 0–1", "Progress of an OSC-started render, to its sender."),
    ("/musika/render/done", "s path", "The render finished; path of the output directory."),
    ("/musika/render/error", "s message", "The render failed."),
)


def markdown() -> str:
    """docs/OSC.md, generated from :data:`TABLE` and :data:`REPLIES`."""
    out = ["# OSC address space", "", "Generated by `python -m bridge.osc_addresses` from bridge/osc_addresses.py; "
           "do not edit by hand.", "", "UDP, 127.0.0.1:9000 by default. Replies go to the sender's address and "
           "port. Messages in a bundle are delivered together at the bundle's timetag (past or immediate "
           "timetags: at once).", "", "| Address | Arguments | Reply | What it does |", "|---|---|---|---|"]
    for row in TABLE:
        args = ", ".join(a.describe() for a in row.args) or "—"
        out.append(f"| `{row.pattern}` | {args} | {row.reply or '—'} | {row.help} |")
    out += ["", "## Messages the server sends", "", "| Address | Arguments | Meaning |", "|---|---|---|"]
    out += [f"| `{a}` | {args} | {text} |" for a, args, text in REPLIES]
    return "\n".join(out) + "\n"


def reaper_file() -> str:
    """docs/daw/Musika.ReaperOSC, generated from the Reaper rows of :data:`TABLE`."""
    rows = [(r.reaper_action.split()[0], r.reaper_action.split()[1], r.pattern) for r in TABLE if r.reaper_action]
    return reaper.surface_file(rows)


GENERATED = {"docs/OSC.md": markdown, "docs/daw/Musika.ReaperOSC": reaper_file}


def write_generated(root: Path) -> list[Path]:
    """Rewrite the generated docs under the repository `root`; returns the paths written."""
    written = []
    for rel, make in GENERATED.items():
        path = Path(root) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(make(), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_generated(Path(sys.argv[1] if len(sys.argv) > 1 else ".")):
        print(p)

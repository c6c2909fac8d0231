"""`musika render`: a session file -> tempo-locked stems through effect chains + a mix; or replay a control log."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

from generator.offline.render import STAGES, RenderResult, render_replay, render_session
from generator.offline.session import BITS, FORMATS, SAMPLE_RATES, Grid, OutputSpec, Session, SessionError, load_session
from generator.runtime.engine import default_threads
from generator.runtime.engine_loader import EngineOptions
from generator.runtime.model_config import SAMPLE_RATE

logger = logging.getLogger(__name__)


class _Bars:
    """One tqdm bar per stem when attached to a terminal; quiet (log lines) otherwise."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bars: dict[str, object] = {}

    def __call__(self, stem: str, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            if stage == "generate":
                logger.info("rendering stem %s", stem)
            return
        from tqdm import tqdm

        bar = self.bars.get(stem)
        if bar is None:
            bar = self.bars[stem] = tqdm(total=total, desc=f"{stem:>12}", unit="stage", leave=True,
                                         bar_format="{desc} {bar} {n_fmt}/{total_fmt} {postfix}")
        bar.set_postfix_str(stage)
        bar.update(done - bar.n)
        if stage == "done":
            bar.close()


def render(session: Path | None = None, out: Path = Path("render"), replay: Path | None = None,
           format: str | None = None, bits: str | None = None, sample_rate: int | None = None,
           threads: int | None = None, presets: list[Path] | None = None, replay_bars: int = 4,
           progress: bool | None = None, config: Path | None = None) -> RenderResult:
    """Render `session` (or replay the control log `replay`, optionally with `session`'s effects) into `out`.

    format/bits/sample_rate override the session's [output] table. `config` (musika.toml): presets load with its
    phase, output stage and preset folders, as `musika serve --config` plays them."""
    if session is None and replay is None:
        raise SessionError("give a session file (musika render session.toml --out DIR) or --replay LOG")
    sess = load_session(session) if session is not None else None
    overrides = {k: v for k, v in (("format", format), ("bits", bits), ("sample_rate", sample_rate)) if v}
    output = replace(sess.output if sess else OutputSpec(), **overrides)
    if output.format == "flac" and output.bits == "float":
        raise SessionError("FLAC cannot store float samples; use --bits 24 or --format wav")
    if sess is not None:
        sess = replace(sess, output=output)
    elif overrides:  # replay without a session: an empty one carries the output settings
        sess = Session(path=None, grid=Grid(((1, 120.0),)), bars=1, stems=(), output=output)
    show = sys.stderr.isatty() if progress is None else progress
    bars = _Bars(show)
    options = EngineOptions(threads=threads, search=tuple(presets or ()))
    if config is not None:
        from bridge.commands.serve_setup import engine_options
        from bridge.config import load_config

        daemon = engine_options(load_config(config))
        options = replace(daemon, threads=threads if threads is not None else daemon.threads,
                          search=(*options.search, *daemon.search))
    if replay is not None:
        result = render_replay(replay, out, session=sess, tail_bars=replay_bars, progress=bars, options=options)
    else:
        result = render_session(sess, out, progress=bars, options=options)
    for name, info in result.report["stems"].items():
        logger.info("stem %s: %s (%.1fx real time)", name, info["file"], info["realtime_factor"] or 0.0)
    logger.info("wrote %d stems, the mix and render.json to %s", len(result.stems), result.out_dir)
    return result


def run(args: argparse.Namespace) -> int:
    render(
        session=Path(args.session) if args.session else None, out=Path(args.out),
        replay=Path(args.replay) if args.replay else None, format=args.format, bits=args.bits,
        sample_rate=args.sample_rate, threads=args.threads, presets=[Path(p) for p in args.presets],
        replay_bars=args.replay_bars, config=Path(args.config) if args.config else None,
    )
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "render",
        help="render a session file to tempo-locked stems + mix, or replay a performance log",
        description=(
            "Render every stem of a session.toml tempo-locked to the session's bar grid (the same lock as live), "
            "through its effect chain, and write each stem, the mix, PNG spectrograms and render.json into "
            "--out. Files start at bar 1 and are exactly the session's length. With --replay, re-render a "
            "logged live performance (JSONL control log); a session file given as well supplies effects and "
            f"output settings. Stages per stem: {', '.join(STAGES)}."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("session", nargs="?", default=None, help="session file (see docs/examples/session.toml)")
    p.add_argument("--replay", default=None, metavar="LOG", help="control log (JSONL) of a live performance")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created; files replaced atomically)")
    p.add_argument("--format", choices=FORMATS, default=None, help="override [output] format (session default wav)")
    p.add_argument("--bits", choices=BITS, default=None, help="override [output] bits (session default 24)")
    p.add_argument("--sample-rate", type=int, choices=SAMPLE_RATES, default=None,
                   help=f"override [output] sample_rate (session default {SAMPLE_RATE})")
    p.add_argument("--threads", type=int, default=default_threads(), help="ONNX Runtime threads")
    p.add_argument("--presets", action="append", default=[], metavar="DIR",
                   help="extra folder to look up preset names in (repeatable; also $MUSIKA_PRESETS)")
    p.add_argument("--config", default=None, metavar="TOML",
                   help="musika.toml of the daemon: presets play with its phase, output stage (loudness, ceiling, "
                        "gain) and preset folders, as they did live")
    p.add_argument("--replay-bars", type=int, default=4,
                   help="with --replay: bars rendered after the last logged change when the log has no stop")
    p.set_defaults(func=run)

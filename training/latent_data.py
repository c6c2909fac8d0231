"""What the GAN trains on: random latent windows with their conditioning, and training coordinates.

* :func:`resolve_conditions`: condition names -> generator.runtime.preset.Condition (kind from the labels: a chunk
  scalar label is a per-window "scalar", a per-latent curve label a "curve"; range and default from the data:
  a scalar's min..max, a curve's 5th..95th percentile, values beyond it clipped).
  "beat" is a "phase" (periods 1 beat and 1 bar) computed from the chunk labels tempo and first_downbeat_s.
* :class:`LatentCrops`: random windows (B, window_len, 2 latent_dim) with their normalised conditioning,
  random L/R swap and condition dropout (NaN = absent, so one model also runs unconditioned).
* :func:`sample_coords`: the reference training coordinates (three anchors 1.5 windows apart, linear
  interpolation, midpoints, window offset half_len/2 + half_len f, f in {0, 1, 2}); the same trajectory that
  generator.runtime.coords.CoordinateStream builds at inference, with untruncated normal anchors as in the reference.

All randomness comes from the numpy Generator passed in.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np

from generator.runtime.conditioning import beat_positions
from generator.runtime.model_config import GanConfig, ModelConfig
from generator.runtime.preset import Condition
from training.encode import CacheEntry
from training.errors import TrainingError

UNITS = {"tempo": "BPM", "density": "notes/s"}
HELP = {"tempo": "tempo of the generated music", "density": "note onsets per second, per latent step"}
logger = logging.getLogger(__name__)

BALANCE_BINS = 8  # --balance: bins of a window's mean curve value (log width) or a chunk's scalar label
CURVE_RANGE = (5.0, 95.0)  # percentiles of a curve condition's values that become its range
BEAT = "beat"  # the phase condition: position in the bar, from the labels below
BEAT_LABELS = ("tempo", "first_downbeat_s", "beats_per_bar")
# recordings prepared with `musika prepare folder --label tempo`: a beat grid's phase, no bar lines
BEAT_GRID_LABELS = ("tempo", "first_beat_s")


def has_beat_grid(labels: set[str] | Mapping[str, float]) -> bool:
    """Whether chunk labels place the beats: bar lines (BEAT_LABELS) or a beat grid (BEAT_GRID_LABELS)."""
    return set(BEAT_LABELS) <= set(labels) or set(BEAT_GRID_LABELS) <= set(labels)


def _beat_origin(entry: CacheEntry) -> float | None:
    """Seconds from a chunk's start to a bar line, or to a beat where it has no bar lines; None: no beat grid."""
    if not has_beat_grid(entry.labels):
        return None
    return entry.labels.get("first_downbeat_s", entry.labels.get("first_beat_s"))


def _beat_condition(entries: Sequence[CacheEntry]) -> Condition:
    timed = [e for e in entries if _beat_origin(e) is not None]
    if not timed:
        raise TrainingError(f"condition 'beat' needs the chunk labels {', '.join(BEAT_LABELS)} (`musika prepare "
                            f"techno`) or {', '.join(BEAT_GRID_LABELS)} (`musika prepare folder --label tempo`); "
                            "no chunk has them")
    if len(timed) < len(entries):
        logger.info("condition 'beat': %d of %d chunks have no beat grid and train with it dropped",
                    len(entries) - len(timed), len(entries))
    if all(set(BEAT_LABELS) <= set(e.labels) for e in timed):
        bar = float(np.median([e.labels["beats_per_bar"] for e in timed]))
        return Condition(name=BEAT, kind="phase", unit="beats", min=0.0, max=bar, default=0.0, periods=(1.0, bar),
                         help="position in the bar (quarter-note beats from a bar line), from the host's transport")
    return Condition(name=BEAT, kind="phase", unit="beats", min=0.0, max=1.0, default=0.0, periods=(1.0,),
                     help="position in the beat (the data has beats but no bar lines), from the host's transport")


def entry_positions(entry: CacheEntry, cfg: ModelConfig) -> np.ndarray:
    """Beat positions (steps,) of a cached chunk's latents from its labels (see generator.runtime.conditioning);
    NaN (the condition dropped) for a chunk without a beat grid."""
    origin = _beat_origin(entry)
    if origin is None:
        return np.full(entry.latents.shape[0], np.nan)
    return beat_positions(cfg, 0, entry.latents.shape[0], entry.labels["tempo"], origin)


def resolve_conditions(entries: Sequence[CacheEntry], names: Sequence[str]) -> tuple[Condition, ...]:
    """Conditions in the order given; the range is the data's min..max (widened when constant)."""
    out = []
    for name in names:
        if name == BEAT:
            out.append(_beat_condition(entries))
            continue
        if any(name in e.labels for e in entries):
            # a chunk without the label (e.g. no confident tempo) trains with the condition dropped (NaN)
            kind = "scalar"
            values = np.array([e.labels.get(name, np.nan) for e in entries], np.float64)
            missing = int(np.isnan(values).sum())
            if missing:
                logger.info("condition %r: %d of %d chunks have no label and train with it dropped", name,
                            missing, len(entries))
        elif all(name in e.curves for e in entries):
            kind = "curve"
            values = np.concatenate([e.curves[name] for e in entries]).astype(np.float64)
        else:
            have = sorted(set().union(*(set(e.labels) | set(e.curves) for e in entries)))
            raise TrainingError(f"condition {name!r} is not a label of every chunk; labels present: "
                                f"{', '.join(have) or 'none'}. Choose from these or re-prepare the dataset")
        values = values[np.isfinite(values)]
        if values.size == 0:
            raise TrainingError(f"condition {name!r} has no finite values in the dataset")
        # a chunk scalar spans the data's whole range; a per-latent curve its 5th..95th percentile: the extreme
        # latents (e.g. the 1 % of piano above 11 notes/s) are too few to learn, and a knob should not promise them
        lo, hi = ((float(values.min()), float(values.max())) if kind == "scalar" else
                  (float(np.percentile(values, CURVE_RANGE[0])), float(np.percentile(values, CURVE_RANGE[1]))))
        if hi - lo < 1e-6 * max(1.0, abs(hi)):
            lo, hi = lo - max(1.0, abs(lo) * 0.05), hi + max(1.0, abs(hi) * 0.05)
        out.append(Condition(name=name, kind=kind, unit=UNITS.get(name, ""), min=round(lo, 4), max=round(hi, 4),
                             default=round(float(np.median(values)), 4), normalise="linear",
                             help=HELP.get(name, "")))
    return tuple(out)


def select_entries(entries: Sequence[CacheEntry], min_labels: Sequence[str]) -> list[CacheEntry]:
    """The entries whose labels are at least the given values ("name=value" each, e.g. "kick_fraction=1")."""
    out = list(entries)
    for rule in min_labels:
        name, sep, text = rule.partition("=")
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not sep or not name or not math.isfinite(value):
            raise TrainingError(f"--min-label {rule!r}: write NAME=VALUE, e.g. kick_fraction=1")
        missing = [e.id for e in out if name not in e.labels]
        if missing:
            have = sorted(set().union(*(set(e.labels) for e in out))) if out else []
            raise TrainingError(f"--min-label {name}: {len(missing)} entries (e.g. {missing[0]}) have no such label; "
                                f"labels present: {', '.join(have) or 'none'}")
        kept = [e for e in out if e.labels[name] >= value]
        logger.info("--min-label %s: %d of %d entries kept", rule, len(kept), len(out))
        if not kept:
            raise TrainingError(f"--min-label {rule}: no entry is left to train on")
        out = kept
    return out


class LatentCrops:
    """Random training windows from a latent cache (entries shorter than a window are skipped).

    balance: a condition whose rarer values are drawn more often. A curve: each window's mean of that curve falls
    in one of ``BALANCE_BINS`` equal log-width bins over the condition's range, and every occupied bin is drawn
    equally often (e.g. the densest piano passages as often as the most common middle). A scalar (tempo): each
    chunk's label falls in one of ``BALANCE_BINS`` equal bins of the range, and the labelled chunks' share of the
    draws is split equally over the occupied bins (a tempo one track has as often as one ten tracks have);
    unlabelled chunks keep their share."""

    def __init__(self, entries: Sequence[CacheEntry], window: int, conditions: Sequence[Condition],
                 model: ModelConfig | None = None, balance: str | None = None):
        self.window = window
        self.entries = [e for e in entries if e.latents.shape[0] >= window]
        if not self.entries:
            longest = max((e.latents.shape[0] for e in entries), default=0)
            raise TrainingError(f"no latent sequence has the {window} steps one GAN window needs (longest: "
                                f"{longest}); use longer chunks or a smaller --half-len")
        self.scalars = [c for c in conditions if c.kind == "scalar"]
        self.curves = [c for c in conditions if c.kind != "scalar"]  # curves and phases, channels in order
        self.groups = np.repeat(np.arange(len(self.curves)), [c.channels for c in self.curves])
        self.dim = self.entries[0].latents.shape[1] // 2
        self.scalar_values = np.array(
            [[np.clip(c.to_model(e.labels.get(c.name, np.nan)), -1, 1) for c in self.scalars] for e in self.entries],
            np.float32).reshape(len(self.entries), len(self.scalars))
        if any(c.kind == "phase" for c in self.curves) and model is None:
            raise TrainingError("a phase condition needs the model config (samples per latent) to place beats")

        def channels(c: Condition, e: CacheEntry) -> np.ndarray:
            if c.kind == "phase":
                return c.to_model(entry_positions(e, model))
            return np.clip(c.to_model(e.curves[c.name]), -1, 1)[:, None]

        self.curve_values = [
            np.concatenate([channels(c, e) for c in self.curves], axis=1).astype(np.float32)
            if self.curves else None for e in self.entries]
        counts = np.array([e.latents.shape[0] - window + 1 for e in self.entries], np.float64)
        self.p = counts / counts.sum()
        self.window_cdf: list[np.ndarray] | None = None  # per entry: CDF over its offsets (balance only)
        if balance:
            self._balance(next((c for c in conditions if c.name == balance), None), balance)

    def _balance(self, cond: Condition | None, name: str) -> None:
        if cond is None or cond.kind not in ("curve", "scalar"):
            names = [c.name for c in (*self.scalars, *self.curves) if c.kind in ("curve", "scalar")]
            raise TrainingError(f"--balance {name}: not a tempo-like or curve condition of this run (those: "
                                f"{', '.join(names) or 'none'})")
        if cond.kind == "scalar":
            self._balance_scalar(cond)
            return
        lo, hi = math.log1p(max(cond.min, 0.0)), math.log1p(max(cond.max, 0.0))
        means = []
        for e in self.entries:  # each window's mean of the curve, by a running sum
            c = np.concatenate([[0.0], np.cumsum(np.asarray(e.curves[name], np.float64))])
            means.append((c[self.window:] - c[: -self.window]) / self.window)
        bins = [np.clip(((np.log1p(np.maximum(m, 0.0)) - lo) / max(hi - lo, 1e-9) * BALANCE_BINS).astype(int),
                        0, BALANCE_BINS - 1) for m in means]
        hist = np.bincount(np.concatenate(bins), minlength=BALANCE_BINS).astype(np.float64)
        weights = [1.0 / hist[b] for b in bins]
        total = sum(float(w.sum()) for w in weights)
        self.p = np.array([w.sum() for w in weights]) / total
        self.window_cdf = [np.cumsum(w) / w.sum() for w in weights]
        logger.info("balancing %s: windows per bin %s -> each occupied bin drawn equally often",
                    name, hist.astype(int).tolist())

    def _balance_scalar(self, cond: Condition) -> None:
        """Entries by their label's bin (BALANCE_BINS equal bins of the normalised range): the labelled entries'
        share of the draws split equally over the occupied bins; unlabelled entries keep their share."""
        values = self.scalar_values[:, self.scalars.index(cond)]
        labelled = np.isfinite(values)
        bins = np.clip(((np.nan_to_num(values) + 1.0) / 2.0 * BALANCE_BINS).astype(int), 0, BALANCE_BINS - 1)
        windows = np.array([e.latents.shape[0] - self.window + 1 for e in self.entries], np.float64)
        per_bin = np.bincount(bins[labelled], weights=windows[labelled], minlength=BALANCE_BINS)
        occupied = np.flatnonzero(per_bin)
        if occupied.size == 0:
            return
        p = np.where(labelled, 0.0, windows)
        p[labelled] = windows[labelled] / per_bin[bins[labelled]] * (windows[labelled].sum() / occupied.size)
        self.p = p / p.sum()
        logger.info("balancing %s: labelled windows per bin %s -> each occupied bin drawn equally often",
                    cond.name, per_bin.astype(int).tolist())

    def sample(
        self, rng: np.random.Generator, batch: int, swap_prob: float, dropout: float
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(latents (B, W, 2 dim), scalars (B, S) or None, curves (B, W, K) or None), float32."""
        idx = rng.choice(len(self.entries), size=batch, p=self.p)
        offs = rng.random(batch)
        swap = rng.random(batch) < swap_prob
        real = np.empty((batch, self.window, 2 * self.dim), np.float32)
        curves = np.empty((batch, self.window, self.groups.size), np.float32) if self.curves else None
        for b, i in enumerate(idx):
            n = self.entries[i].latents.shape[0]
            if self.window_cdf is None:
                s = int(offs[b] * (n - self.window + 1))
            else:
                s = min(int(np.searchsorted(self.window_cdf[i], offs[b], side="right")), n - self.window)
            real[b] = self.entries[i].latents[s : s + self.window]
            if swap[b]:
                real[b] = np.concatenate([real[b, :, self.dim :], real[b, :, : self.dim]], axis=1)
            if curves is not None:
                curves[b] = self.curve_values[i][s : s + self.window]
        scalars = self.scalar_values[idx].copy() if self.scalars else None
        if scalars is not None:
            scalars[rng.random(scalars.shape) < dropout] = np.nan
        return real, scalars, drop_curves(rng, curves, dropout, self.groups)


def drop_curves(rng: np.random.Generator, curves: np.ndarray | None, dropout: float,
                groups: np.ndarray | None = None) -> np.ndarray | None:
    """Whole conditions set to NaN with probability `dropout` per item and condition; `groups` gives each
    channel's condition (a phase's sin/cos channels drop together; default: one channel per condition)."""
    if curves is None:
        return None
    groups = np.arange(curves.shape[2]) if groups is None else groups
    mask = (rng.random((curves.shape[0], int(groups.max()) + 1)) < dropout)[:, groups]
    out = curves.copy()
    out[np.repeat(mask[:, None, :], curves.shape[1], axis=1)] = np.nan
    return out


def sample_coords(rng: np.random.Generator, batch: int, g: GanConfig) -> np.ndarray:
    """Training coordinates (batch, window_len, local_dim + global_dim), float32 (see module docstring)."""
    glob = rng.standard_normal((batch, 1, g.global_dim))
    local = rng.standard_normal((batch, 3, g.local_dim))
    anchors = np.concatenate([local, np.repeat(glob, 3, axis=1)], axis=2)  # (B, 3, C)
    return coords_from_anchors(anchors, g.half_len // 2 + g.half_len * rng.integers(0, 3, size=batch), g)


def coords_from_anchors(anchors: np.ndarray, start: np.ndarray, g: GanConfig) -> np.ndarray:
    """Anchors (B, 3, C) spaced anchor_spacing apart, window offsets (B,) from the first anchor ->
    (B, window_len, C): linear interpolation, then midpoints of neighbouring points."""
    s = g.anchor_spacing
    m = np.asarray(start)[:, None] + np.arange(g.window_len)[None, :]  # the point after m is m + 1 <= 2 s

    def points(m: np.ndarray) -> np.ndarray:
        i = np.minimum(m // s, 1)
        frac = ((m - i * s) / s)[..., None]
        a0 = np.take_along_axis(anchors, i[..., None], axis=1)
        a1 = np.take_along_axis(anchors, i[..., None] + 1, axis=1)
        return a0 + frac * (a1 - a0)

    return (0.5 * (points(m) + points(m + 1))).astype(np.float32)

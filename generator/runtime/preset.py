"""The preset schema (format "musika-preset/1"): one set of frozen dataclasses used to read and write preset.json.

A preset is a directory ``presets/<name>/`` holding ``preset.json``, ONNX files and ``MODEL_CARD.md``. Model
files may live in a shared autoencoder directory (``presets/_autoencoders/<name>/``) referenced by a relative
path; every file is checked against its sha256 at load and a mismatch names the file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from generator.atomic import write_json
from generator.errors import ConditioningError, MusikaError, PresetError
from generator.runtime.model_config import ModelConfig
from generator.runtime.onnx_io import NETWORKS, REQUIRED_NETWORKS

FORMAT = "musika-preset/1"
PRESET_FILE = "preset.json"
MAX_OFFSET_MS = 100.0  # a phase's heard-beat offset beyond this is a broken calibration, not a model
REPO_PRESETS = Path(__file__).resolve().parents[2] / "presets"


@dataclass(frozen=True)
class Condition:
    """One conditioning input the model was trained with.

    kind "scalar" is one value per generator window (tempo); "curve" is one value per latent step (density).
    The model sees 2 (f(v) - f(min)) / (f(max) - f(min)) - 1 with f = log for normalise "log", else identity.
    kind "phase" is a position per latent step in quarter-note beats from a bar line (see generator.beat_phase);
    the model sees sin and cos of 2 pi v / P for each period P in `periods` (1: the beat, 4: a 4/4 bar), so it
    takes 2 len(periods) curve channels. It is not a user control: callers derive it from the tempo and the bar
    grid they play to. ``offset_ms`` (a phase only) is where the preset's heard beats fall against the conditioned
    position, measured by ``musika presets --calibrate`` (negative: early); players condition that much later
    (generator.runtime.conditioning.played_positions), so the beats are heard on the host's.
    """

    name: str
    kind: Literal["scalar", "curve", "phase"]
    unit: str
    min: float
    max: float
    default: float
    normalise: Literal["linear", "log"] = "linear"
    help: str = ""
    periods: tuple[float, ...] = ()
    offset_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("scalar", "curve", "phase"):
            raise PresetError(f"conditioning {self.name!r}: kind must be 'scalar', 'curve' or 'phase', "
                              f"got {self.kind!r}")
        if self.normalise not in ("linear", "log"):
            raise PresetError(f"conditioning {self.name!r}: normalise must be 'linear' or 'log'")
        if not (self.min < self.max) or (self.normalise == "log" and self.min <= 0):
            raise PresetError(f"conditioning {self.name!r}: invalid range {self.min}..{self.max}")
        object.__setattr__(self, "periods", tuple(float(p) for p in self.periods))
        if (self.kind == "phase") != bool(self.periods) or any(not p > 0 for p in self.periods):
            raise PresetError(f"conditioning {self.name!r}: a 'phase' condition needs positive periods (beats) "
                              f"and other kinds none, got {list(self.periods)}")
        if not (math.isfinite(self.offset_ms) and abs(self.offset_ms) <= MAX_OFFSET_MS) or (
                self.offset_ms and self.kind != "phase"):
            raise PresetError(f"conditioning {self.name!r}: offset_ms {self.offset_ms} must be a phase's, within "
                              f"+-{MAX_OFFSET_MS:g} ms; calibrate it again with musika presets --calibrate")

    @property
    def channels(self) -> int:
        """Model input channels: 2 per period for a phase, else 1."""
        return 2 * len(self.periods) if self.kind == "phase" else 1

    def check(self, value: float | np.ndarray) -> np.ndarray:
        """Validate user values (finite, within min..max; a phase position only finite); returns float32."""
        arr = np.asarray(value, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise ConditioningError(f"{self.name}: value {value!r} is not a finite number; use {self.min}..{self.max}")
        if self.kind == "phase":
            return arr.astype(np.float32)
        lo, hi = float(arr.min(initial=self.min)), float(arr.max(initial=self.max))
        if lo < self.min - 1e-9 or hi > self.max + 1e-9:
            bad = lo if lo < self.min else hi
            raise ConditioningError(
                f"{self.name}: {bad:g} {self.unit} is outside the range this preset was trained on "
                f"({self.min:g}..{self.max:g} {self.unit})"
            )
        return arr.astype(np.float32)

    def to_model(self, value: float | np.ndarray) -> np.ndarray:
        """User value(s) -> the model's normalised input in [-1, 1] (NaN stays NaN: 'unconditioned').

        A phase maps shape S to S + (channels,): sin, cos for each period in turn."""
        v = np.asarray(value, dtype=np.float64)
        if self.kind == "phase":
            turns = v[..., None] / np.asarray(self.periods)
            angle = 2.0 * np.pi * np.mod(turns, 1.0)
            return np.stack([np.sin(angle), np.cos(angle)], axis=-1).reshape(*v.shape, -1).astype(np.float32)
        f = np.log if self.normalise == "log" else (lambda x: x)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = 2.0 * (f(v) - f(self.min)) / (f(self.max) - f(self.min)) - 1.0
        return out.astype(np.float32)

    def from_model(self, norm: float | np.ndarray) -> np.ndarray:
        if self.kind == "phase":
            raise ValueError(f"{self.name}: a phase condition has no inverse mapping")
        n = (np.asarray(norm, dtype=np.float64) + 1.0) / 2.0
        if self.normalise == "log":
            return np.exp(math.log(self.min) + n * (math.log(self.max) - math.log(self.min))).astype(np.float32)
        return (self.min + n * (self.max - self.min)).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """The preset.json / checkpoint entry (``periods`` only for a phase)."""
        keys = ("name", "kind", "unit", "min", "max", "default", "normalise", "help")
        out: dict[str, Any] = {k: getattr(self, k) for k in keys}
        if self.periods:
            out["periods"] = list(self.periods)
        if self.offset_ms:
            out["offset_ms"] = self.offset_ms
        return out


@dataclass(frozen=True)
class ModelFile:
    file: str  # relative to the preset directory
    sha256: str


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    license: str
    config: ModelConfig
    conditioning: tuple[Condition, ...]
    models: Mapping[str, ModelFile]
    training: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None  # the preset directory, when loaded from disk

    def condition(self, name: str) -> Condition:
        for c in self.conditioning:
            if c.name == name:
                return c
        known = ", ".join(c.name for c in self.conditioning) or "none"
        raise ConditioningError(f"preset {self.name!r} has no conditioning {name!r} (it has: {known})")

    def has_condition(self, name: str) -> bool:
        return any(c.name == name for c in self.conditioning)

    @property
    def scalars(self) -> tuple[Condition, ...]:
        return tuple(c for c in self.conditioning if c.kind == "scalar")

    @property
    def curves(self) -> tuple[Condition, ...]:
        """Per-latent-step inputs in the model's cond_curve order: curves and phases as listed."""
        return tuple(c for c in self.conditioning if c.kind != "scalar")

    @property
    def controls(self) -> tuple[Condition, ...]:
        """Conditions a user sets (knobs, flags, automation): all but phases, which follow the bar grid."""
        return tuple(c for c in self.conditioning if c.kind != "phase")

    @property
    def phases(self) -> tuple[Condition, ...]:
        return tuple(c for c in self.conditioning if c.kind == "phase")

    def model_path(self, network: str) -> Path:
        if network not in self.models:
            raise PresetError(f"preset {self.name!r} ships no {network} model")
        if self.path is None:
            raise PresetError(f"preset {self.name!r} was not loaded from a directory")
        return (self.path / self.models[network].file).resolve()

    def to_json(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "format": FORMAT,
            "name": self.name,
            "description": self.description,
            "license": self.license,
            "audio": {
                "sample_rate": cfg.audio.sample_rate,
                "hop": cfg.audio.hop,
                "n_fft": cfg.audio.n_fft,
                "channels": cfg.audio.channels,
                "db_mu": cfg.audio.db_mu,
                "db_sigma": cfg.audio.db_sigma,
                "phase": cfg.audio.phase,
                "loudness_lufs": cfg.audio.loudness_lufs,
            },
            "latent": {
                "dim": cfg.autoencoder.latent_dim,
                "rate_hz": cfg.latent_rate_hz,
                "window": cfg.gan.window_len,
                "half": cfg.gan.half_len,
                "coords": {
                    "anchor_spacing": cfg.gan.anchor_spacing,
                    "local_dim": cfg.gan.local_dim,
                    "global_dim": cfg.gan.global_dim,
                    "default_truncation": cfg.gan.default_truncation,
                    "default_guidance": cfg.gan.default_guidance,
                },
            },
            "conditioning": [c.to_dict() for c in self.conditioning],
            "models": {k: {"file": m.file, "sha256": m.sha256} for k, m in self.models.items()},
            "architecture": cfg.to_dict(),
            "training": dict(self.training),
            "metrics": dict(self.metrics),
        }


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_sha256(path: str | Path, expected: str, owner: str, manifest: str, fix: str,
                 error: type[MusikaError] = PresetError, where: str = "") -> None:
    """The one integrity check of a shipped file: `error` naming `owner`, the file (`where` it lives), both hashes
    and `fix` when the file's sha256 is not what `manifest` recorded."""
    actual = sha256_file(path)
    if actual != expected:
        raise error(f"{owner}: {path}{where} fails its integrity check (sha256 {actual}, {manifest} expects "
                    f"{expected}). The file is corrupt or was replaced; {fix}")


def _require(data: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise PresetError(f"{where}: missing required key {key!r}")
    return data[key]


def parse_preset(data: Mapping[str, Any], where: str, path: Path | None = None) -> Preset:
    """Validate a preset.json mapping; `where` names the file in error messages."""
    fmt = data.get("format")
    if fmt != FORMAT:
        raise PresetError(
            f"{where}: format {fmt!r} is not supported; this version of Musika Bridge reads {FORMAT!r}. "
            "Re-export the preset with `musika export`, or upgrade musika-bridge."
        )
    try:
        cfg = ModelConfig.from_dict(_require(data, "architecture", where))
        conds = tuple(Condition(**c) for c in data.get("conditioning", []))
        models = {k: ModelFile(file=str(v["file"]), sha256=str(v["sha256"])) for k, v in data["models"].items()}
    except PresetError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise PresetError(f"{where}: invalid preset description: {exc}") from exc
    missing = [n for n in REQUIRED_NETWORKS if n not in models]
    unknown = [n for n in models if n not in NETWORKS]
    if missing or unknown:
        raise PresetError(
            f"{where}: models must include {list(REQUIRED_NETWORKS)} (missing {missing}, unknown {unknown})"
        )
    scal = sum(c.kind == "scalar" for c in conds)
    curv = sum(c.channels for c in conds if c.kind != "scalar")
    if (scal, curv) != (cfg.gan.cond_scalars, cfg.gan.cond_curves):
        raise PresetError(
            f"{where}: conditioning lists {scal} scalar and {curv} curve channels but the generator was built "
            f"with {cfg.gan.cond_scalars} and {cfg.gan.cond_curves}"
        )
    return Preset(
        name=str(_require(data, "name", where)),
        description=str(data.get("description", "")),
        license=str(data.get("license", "unknown")),
        config=cfg,
        conditioning=conds,
        models=models,
        training=data.get("training", {}) or {},
        metrics=data.get("metrics", {}) or {},
        path=path,
    )


def preset_search_path(extra: Iterable[str | Path] = ()) -> list[Path]:
    """Where preset names are looked up: extra dirs, $MUSIKA_PRESETS (os.pathsep-separated), the repo's presets/."""
    dirs = [Path(p) for p in extra]
    env = os.environ.get("MUSIKA_PRESETS")
    if env:
        dirs += [Path(p) for p in env.split(os.pathsep) if p]
    dirs.append(REPO_PRESETS)
    return dirs


def resolve_preset_dir(name_or_path: str | Path, search: Iterable[str | Path] = ()) -> Path:
    p = Path(name_or_path)
    if (p / PRESET_FILE).is_file():
        return p.resolve()
    if p.name == PRESET_FILE and p.is_file():
        return p.parent.resolve()
    dirs = preset_search_path(search)
    if len(p.parts) == 1:
        for d in dirs:
            if (d / p / PRESET_FILE).is_file():
                return (d / p).resolve()
    available = sorted({x.name for d in dirs for x in list_preset_dirs(d)})
    raise PresetError(
        f"unknown preset {str(name_or_path)!r}: no {PRESET_FILE} there or in {', '.join(map(str, dirs))}. "
        f"Available: {', '.join(available) or 'none'} (see `musika presets`)"
    )


def list_preset_dirs(root: str | Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(d for d in root.iterdir() if (d / PRESET_FILE).is_file() and not d.name.startswith("_"))


def load_preset(name_or_path: str | Path, search: Iterable[str | Path] = (), verify: bool = True) -> Preset:
    """Load and validate a preset; with verify, every model file is checked against its sha256."""
    directory = resolve_preset_dir(name_or_path, search)
    json_path = directory / PRESET_FILE
    try:
        data = json.loads(json_path.read_text())
    except json.JSONDecodeError as exc:
        raise PresetError(f"{json_path}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}") from exc
    except OSError as exc:
        raise PresetError(f"{json_path}: cannot be read: {exc.strerror}") from exc
    if not isinstance(data, dict):
        raise PresetError(f"{json_path}: expected a JSON object at the top level")
    preset = parse_preset(data, str(json_path), path=directory)
    for network in preset.models:
        file = preset.model_path(network)
        shared = _shared_dir(file, directory)
        if not file.is_file():
            if shared is not None:
                raise PresetError(
                    f"preset {preset.name!r} plays on the shared autoencoder {shared}, but its {network} file "
                    f"{file.name} is missing there{'' if shared.is_dir() else ' (the folder is missing)'}. Restore "
                    f"the folder (git checkout -- {shared}) or re-export the preset against an autoencoder you have "
                    "(musika export --autoencoder-dir DIR)")
            raise PresetError(f"preset {preset.name!r}: {network} model file {file} is missing")
        if verify:
            check_sha256(file, preset.models[network].sha256, f"preset {preset.name!r}", "preset.json",
                         "restore it (git checkout) or rebuild the preset with `musika export`"
                         f"{' --autoencoder-dir ' + str(shared) if shared is not None else ''}.",
                         where=f" in the shared autoencoder {shared}" if shared is not None else "")
    return preset


def _shared_dir(file: Path, preset_dir: Path) -> Path | None:
    """The shared autoencoder directory a model file lives in, or None when it is the preset's own."""
    parent = file.parent
    return None if parent == preset_dir.resolve() else parent


def write_preset_json(preset: Preset, directory: str | Path) -> Path:
    """Write preset.json atomically into `directory` (the model files must already be there)."""
    directory = Path(directory)
    target = directory / PRESET_FILE
    write_json(target, preset.to_json())
    return target


def update_preset_json(directory: str | Path, **sections: Mapping[str, Any]) -> None:
    """Merge new `training`/`metrics` figures into an existing preset.json (hashes untouched)."""
    target = Path(directory) / PRESET_FILE
    data = json.loads(target.read_text())
    for key, values in sections.items():
        if key not in ("training", "metrics"):
            raise ValueError(f"only training/metrics may be updated, not {key!r}")
        data.setdefault(key, {}).update(values)
    write_json(target, data)

"""Finds and loads real drum samples (Debian's hydrogen-drumkits), tracking the licence of every kit used.

Kits are read from ``drumkit.xml`` files; each instrument is sorted into a category (kick, snare, clap, hat,
open_hat, perc) by its name. When no kit is installed the library is empty and the renderer synthesises every
voice instead. Loaded samples are cached per process: mono float32 at 44.1 kHz, leading silence trimmed so the
attack sits on the grid, peak-normalised.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from generator.runtime.model_config import SAMPLE_RATE as SR

logger = logging.getLogger(__name__)

DEFAULT_ROOTS = (Path("/usr/share/hydrogen/data/drumkits"), Path.home() / ".hydrogen/data/drumkits")
#: Kits made for electronic music: the only ones kicks are taken from.
ELECTRONIC_KITS = frozenset({"ElectricEmpireKit", "HardElectro1", "VariBreaks", "Audiophob"})
#: Licences per kit folder, from /usr/share/doc/hydrogen-drumkits/copyright (Debian).
KIT_LICENCES = {
    "Audiophob": "CC0-1.0",
    "BJA_Pacific": "CC-BY-SA-3.0-US (Luc Tunguay)",
    "ColomboAcousticDrumkit": "GPL-2+ with composition exception (Marcos Guglielmetti)",
    "ElectricEmpireKit": "GPL-2+ (Artemiy Pavlov)",
    "HardElectro1": "GPL-2+ (Artemiy Pavlov)",
    "VariBreaks": "GPL-2+ (Artemiy Pavlov)",
    "ForzeeStereo": "GPL-2",
    "Gimme A Hand 1.0": "GPL-2 (Glen MacArthur)",
    "The Black Pearl 1.0": "GPL-2 (Glen MacArthur)",
    "Millo-Drums_v.1": "GPL-2 (Emiliano Grilli)",
    "Millo_MultiLayered2": "GPL-2 (Emiliano Grilli)",
    "Millo_MultiLayered3": "GPL-2 (Emiliano Grilli)",
    "circAfrique v4": "CC-BY-SA-3.0 (Jim Harney)",
    "rumpf_kit_z01_h2": "CC-BY-3.0 (Emanuel Rumpf)",
}
CATEGORIES = ("kick", "snare", "clap", "hat", "open_hat", "perc")
_RULES = (
    ("open_hat", r"open|op\b|\bohh|semi"),
    ("hat", r"hh|hat|hi-hat|hihat"),
    ("kick", r"kick|bass ?drum|\bbd\b"),
    ("clap", r"clap|snap"),
    ("snare", r"snare"),
    ("perc", r"tom|conga|bongo|cowbell|clave|wood|rim|stick|agogo|tamb|maraca|djembe|cajon|drum \d|bell hit"),
)
_SKIP = re.compile(r"crash|ride|china|splash|swish|choke|pedal|roll|whistle|zap|fx|click", re.I)


@dataclass(frozen=True)
class KitSample:
    kit: str
    instrument: str
    path: Path
    category: str
    licence: str


def classify(name: str) -> str | None:
    """Category of a drumkit instrument name, or None when it is not useful here (cymbals, fx, ...)."""
    if _SKIP.search(name):
        return None
    low = name.lower()
    for cat, pattern in _RULES:
        if re.search(pattern, low):
            return cat
    return None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def read_kit(kit_dir: Path) -> list[KitSample]:
    """All usable samples of one Hydrogen kit folder (one per layer)."""
    root = ET.parse(kit_dir / "drumkit.xml").getroot()
    licence_text = next((e.text for e in root if _local(e.tag) == "license" and e.text), None)
    licence = KIT_LICENCES.get(kit_dir.name, licence_text or "unknown: see the kit's drumkit.xml/README")
    found = []
    for inst in root.iter():
        if _local(inst.tag) != "instrument":
            continue
        name = next((e.text or "" for e in inst if _local(e.tag) == "name"), "")
        cat = classify(name)
        if cat is None:
            continue
        for el in inst.iter():
            if _local(el.tag) == "filename" and el.text and (kit_dir / el.text).is_file():
                found.append(KitSample(kit_dir.name, name, kit_dir / el.text, cat, licence))
    return found


class SampleLibrary:
    """Drum samples by category, found under *roots* (missing roots are fine: the library is then empty)."""

    def __init__(self, roots: tuple[Path, ...] | list[Path] = DEFAULT_ROOTS):
        self.samples: dict[str, list[KitSample]] = {c: [] for c in CATEGORIES}
        for root in roots:
            if not Path(root).is_dir():
                continue
            for kit_dir in sorted(Path(root).iterdir()):
                if (kit_dir / "drumkit.xml").is_file():
                    try:
                        for s in read_kit(kit_dir):
                            self.samples[s.category].append(s)
                    except ET.ParseError as exc:
                        logger.warning("skipping drum kit %s: drumkit.xml does not parse (%s)", kit_dir, exc)
        for c in CATEGORIES:
            if c == "kick":
                self.samples[c] = [s for s in self.samples[c] if s.kit in ELECTRONIC_KITS]
            self.samples[c].sort(key=lambda s: str(s.path))
        logger.debug("drum samples: %s", {c: len(v) for c, v in self.samples.items()})

    def __len__(self) -> int:
        return sum(len(v) for v in self.samples.values())

    def pick(self, category: str, choice: int) -> KitSample | None:
        """Deterministic pick: the choice-th sample (mod count) of a category, or None when there is none."""
        pool = self.samples.get(category, [])
        return pool[choice % len(pool)] if pool else None


@lru_cache(maxsize=512)
def load(path: Path, max_seconds: float = 1.5) -> np.ndarray:
    """Mono float32 (samples,) at 44.1 kHz: resampled, leading silence cut, peak 1, faded out at max_seconds."""
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    x = data.mean(axis=1)
    if sr != SR:
        g = np.gcd(int(sr), SR)
        x = resample_poly(x, SR // g, int(sr) // g).astype(np.float32)
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak <= 0:
        return np.zeros(1, dtype=np.float32)
    start = int(np.argmax(np.abs(x) > 0.05 * peak))
    x = x[max(start - 8, 0) :][: int(max_seconds * SR)] / peak
    m = min(len(x), int(0.02 * SR))
    x[len(x) - m :] *= np.linspace(1.0, 0.0, m, dtype=np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)

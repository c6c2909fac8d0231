"""How often does the eval's tempo tracker agree with a dataset's own labels? (The ceiling of `musika eval`'s
"within ±2 %" on recordings.)

    python scripts/tempo_ceiling.py DATASET [--seconds 12] [--per-split 32]

For evenly spread labelled chunks of each split, the first SECONDS are measured as `musika eval` measures a
generated clip (training.analysis.measure_tempo within half an octave of the label, a line through the beats),
and the fraction within ±2 % of the chunk's label is printed.
"""

from __future__ import annotations

import argparse
import math

from training.analysis import measure_tempo
from training.data.dataset import Dataset
from training.metrics import TEMPO_TOLERANCE


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset")
    p.add_argument("--seconds", type=float, default=12.0)
    p.add_argument("--per-split", type=int, default=32)
    a = p.parse_args()
    ds = Dataset(a.dataset)
    for split in ("heldout", "train"):
        chunks = [c for c in ds.split(split) if "tempo" in c.labels]
        chunks = chunks[:: max(1, len(chunks) // a.per_split)]
        hits = 0
        for c in chunks:
            label = c.labels["tempo"]
            audio = ds.audio(c)[:, : int(a.seconds * 44100)]
            est = measure_tempo(audio, 44100, bpm_range=(label / math.sqrt(2), label * math.sqrt(2)))
            hits += abs(est.bpm / label - 1) <= TEMPO_TOLERANCE
        print(f"{split}: {hits} of {len(chunks)} labelled chunks within ±2 % of their label ({a.seconds:g} s)")


if __name__ == "__main__":
    main()

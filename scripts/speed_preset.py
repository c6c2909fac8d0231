"""Write a speed-only preset: a generator of the shipped techno preset's size with random weights, on a shared
autoencoder, so `musika bench --preset OUT/speed` measures what a preset on that autoencoder costs (its sound means
nothing).

Usage: python scripts/speed_preset.py AUTOENCODER_DIR OUT_DIR
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from generator.runtime.model_config import ModelConfig
from generator.runtime.preset import load_preset
from training.export import export_preset
from training.models import Generator
from training.shared_autoencoder import read_autoencoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("autoencoder", help="shared autoencoder folder")
    parser.add_argument("out", help="folder that receives the preset 'speed'")
    args = parser.parse_args()
    torch.manual_seed(0)
    techno = load_preset("techno", verify=False)
    arch = read_autoencoder(args.autoencoder)["architecture"]
    cfg = ModelConfig.from_dict({"audio": arch["audio"], "autoencoder": arch["autoencoder"]})
    cfg = dataclasses.replace(cfg, gan=techno.config.gan)
    export_preset({"generator": Generator(cfg).eval()}, cfg, args.out, "speed", "speed measurement only",
                  techno.conditioning, autoencoder_dir=args.autoencoder)
    print(f"wrote {args.out}/speed")


if __name__ == "__main__":
    main()

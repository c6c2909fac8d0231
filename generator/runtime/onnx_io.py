"""The ONNX interface of every network: one table of input and output names, shared by export and engine.

All tensors are float32 and time-major, (batch, time, channels). Batch is the only dynamic axis.
Each network that injects noise has one ``noise`` input of shape (batch, N) holding standard-normal values;
the network slices it per layer (N is fixed per network and read from the ONNX input shape). Passing zeros
turns noise injection off; passing seeded values reproduces a run exactly.

| network   | inputs                                                    | outputs                                   |
|-----------|-----------------------------------------------------------|-------------------------------------------|
| generator | coords (B, half_len, local+global), [cond_scalar (B, S)], | latents (B, half_len, 2*latent_dim)       |
|           | [cond_curve (B, half_len, K)], noise (B, N)               |                                           |
| decoder2  | latents (B, dec2_window, latent_dim), noise (B, N)        | frames (B, dec1_window, frame_dim)        |
| decoder1  | frames (B, dec1_window, frame_dim), noise (B, N)          | magnitude (B, dec1_window, bins),         |
|           |                                                           | phase (B, dec1_window, bins), both [-1, 1]|
| encoder1  | spec (B, T, bins) normalised dB magnitude                 | frames (B, T, frame_dim)                  |
| encoder2  | frames (B, level2_frames * k, frame_dim)                  | latents (B, k, latent_dim)                |

B of the generator counts halves: a window of two halves is two batch items. cond_scalar and cond_curve are
present only when the preset declares conditioning of that kind; values are normalised as the preset says.
"""

from __future__ import annotations

NETWORKS = ("generator", "decoder2", "decoder1", "encoder1", "encoder2")
REQUIRED_NETWORKS = ("generator", "decoder2", "decoder1")

INPUTS: dict[str, tuple[str, ...]] = {
    "generator": ("coords", "cond_scalar", "cond_curve", "noise"),
    "decoder2": ("latents", "noise"),
    "decoder1": ("frames", "noise"),
    "encoder1": ("spec",),
    "encoder2": ("frames",),
}
OUTPUTS: dict[str, tuple[str, ...]] = {
    "generator": ("latents",),
    "decoder2": ("frames",),
    "decoder1": ("magnitude", "phase"),
    "encoder1": ("frames",),
    "encoder2": ("latents",),
}
OPSET = 17

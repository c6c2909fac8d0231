"""Model hyper-parameters: one definition, saved in checkpoints and in preset.json, used to rebuild networks.

The defaults reproduce the 44.1 kHz reference Musika release (see shared/reference/musika-architecture.md):
encoder1 4.79 M, encoder2 3.98 M, decoder2 6.64 M, decoder1 12.67 M, generator 15.50 M and critic 20.79 M
parameters. Shipped presets use narrower widths (see :meth:`ModelConfig.scaled`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# how the engine makes the phase of decoded spectra (generator.runtime.phase_vocoder): decoder1's own, from the
# magnitudes (restarting at attacks, never at decoder-window joins), or from the magnitudes restarting at joins too
PHASES = ("decoder", "vocoder", "vocoder-joins")


@dataclass(frozen=True)
class AudioConfig:
    """The spectral representation: STFT sizes and the dB normalisation S = (dB - db_mu) / db_sigma."""

    sample_rate: int = 44100
    n_fft: int = 1024
    hop: int = 256
    channels: int = 2
    db_mu: float = -25.0
    db_sigma: float = 75.0
    # how the engine makes the phase of decoded spectra by default (one of PHASES); set at export (`musika export
    # --phase`), not used in training
    phase: str = "decoder"
    # integrated loudness (LUFS) of the preset's default output at the decoders' level, measured after training
    # (generator.runtime.loudness); the engine's output stage adds the gain that brings it to its target. None:
    # unmeasured
    loudness_lufs: float | None = None

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValueError(f"audio phase must be one of {', '.join(PHASES)}, got {self.phase!r}")


@dataclass(frozen=True)
class AutoencoderConfig:
    """Two-level autoencoder: level 1 maps one STFT frame to ``frame_dim`` floats, level 2 maps
    ``level2_frames`` level-1 vectors to one ``latent_dim`` latent (per audio channel)."""

    frame_dim: int = 64
    latent_dim: int = 64
    level2_frames: int = 16
    enc1_widths: tuple[int, ...] = (1024, 1024, 1024, 1024, 1024)
    # decoder1: e0, e1, e2, e3 widths (stride 1, 2, 2, 2); the up path mirrors them.
    dec1_widths: tuple[int, int, int, int] = (768, 768, 512, 256)
    # encoder2: Conv(3,1) w0, Conv(3,2,valid) w1, Conv(3,1) w2, Conv(3,2,valid) w3, Conv(3,1) w4,
    # Conv(3,1,valid) w5, 1x1 w6, then 1x1 -> latent_dim
    enc2_widths: tuple[int, int, int, int, int, int, int] = (256, 384, 384, 512, 512, 768, 768)
    # decoder2: Conv(3) w0, ConvT w1, Conv(3) w2, ConvT w3, Conv(3) w4, ConvT w5, ConvT w6, 1x1 -> frame_dim
    dec2_widths: tuple[int, int, int, int, int, int, int] = (768, 640, 640, 512, 512, 384, 256)
    dec1_window: int = 64  # level-1 vectors (STFT frames) per decoder1 call
    dec2_window: int = 4  # latents per decoder2 call (dec2_window * level2_frames == dec1_window)
    enc1_window: int = 128  # frames per encoder1 call during encoding
    # a linear path beside level 1's networks (spectrum -> frame and back), started as principal components
    # (training.pca_init); written into configurations only when on
    level1_linear: bool = False

    def __post_init__(self) -> None:
        if self.dec2_window * self.level2_frames != self.dec1_window:
            raise ValueError(
                f"dec2_window ({self.dec2_window}) x level2_frames ({self.level2_frames}) must equal "
                f"dec1_window ({self.dec1_window})"
            )


@dataclass(frozen=True)
class GanConfig:
    """Latent GAN: generator over coordinate windows made of two independent halves, and its critic."""

    base_channels: int = 128  # generator widths are 7,6,5,4,3,2 x base_channels
    critic_channels: int = 128  # critic widths are 3,4,5,6,7,7 x critic_channels
    half_len: int = 128  # latents per generator half (a window is two halves)
    local_dim: int = 64  # coordinate dims interpolated between anchors
    global_dim: int = 64  # coordinate dims of the constant style vector
    cond_scalars: int = 0  # per-window conditioning values (e.g. tempo)
    cond_curves: int = 0  # per-latent-step conditioning curves (e.g. note density)
    default_truncation: float = 2.0
    # inference: latents = u + g (c - u), c conditioned, u unconditioned (all conditions NaN), g this guidance;
    # 1 = the conditioned output as is (see generator.runtime.engine.Engine.latents)
    default_guidance: float = 1.0

    @property
    def window_len(self) -> int:
        return 2 * self.half_len

    @property
    def anchor_spacing(self) -> int:
        """Latents between two anchors: 1.5 windows (384 for the reference)."""
        return 3 * self.half_len

    @property
    def coord_dim(self) -> int:
        return self.local_dim + self.global_dim

    @property
    def cond_inputs(self) -> int:
        """Conditioning channels a network reads per latent step: each condition channel as a (value, given) pair,
        scalars first, then curves."""
        return 2 * self.cond_scalars + 2 * self.cond_curves

    @property
    def generator_inputs(self) -> int:
        """Channels the generator reads per latent step: the coordinates, then the conditioning."""
        return self.coord_dim + self.cond_inputs

    def __post_init__(self) -> None:
        if self.half_len < 16 or self.half_len & (self.half_len - 1):
            raise ValueError(f"half_len must be a power of two >= 16, got {self.half_len}")


@dataclass(frozen=True)
class ModelConfig:
    audio: AudioConfig = field(default_factory=AudioConfig)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    gan: GanConfig = field(default_factory=GanConfig)

    @property
    def samples_per_latent(self) -> int:
        return self.audio.hop * self.autoencoder.level2_frames

    @property
    def latent_rate_hz(self) -> float:
        return self.audio.sample_rate / self.samples_per_latent

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if not out["autoencoder"]["level1_linear"]:  # configurations from before the option read the same
            del out["autoencoder"]["level1_linear"]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys are refused with their names."""

        def build(kind: type, values: dict[str, Any]) -> Any:
            names = {f.name for f in dataclasses.fields(kind)}
            unknown = sorted(set(values) - names)
            if unknown:
                raise ValueError(f"unknown {kind.__name__} keys {unknown}; known keys: {sorted(names)}")
            converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
            return kind(**converted)

        unknown = sorted(set(data) - {"audio", "autoencoder", "gan"})
        if unknown:
            raise ValueError(f"unknown model config sections {unknown}; known: audio, autoencoder, gan")
        return cls(
            audio=build(AudioConfig, data.get("audio", {})),
            autoencoder=build(AutoencoderConfig, data.get("autoencoder", {})),
            gan=build(GanConfig, data.get("gan", {})),
        )

    def with_conditioning(self, scalars: int, curves: int) -> ModelConfig:
        return dataclasses.replace(self, gan=dataclasses.replace(self.gan, cond_scalars=scalars, cond_curves=curves))

    def scaled(self, ae: float = 1.0, gan: float = 1.0, half_len: int | None = None) -> ModelConfig:
        """A narrower (or wider) model: every hidden width multiplied by the factor, rounded to 8."""

        def w(x: int, f: float) -> int:
            return max(8, int(round(x * f / 8)) * 8)

        a = self.autoencoder
        g = self.gan
        return dataclasses.replace(
            self,
            autoencoder=dataclasses.replace(
                a,
                enc1_widths=tuple(w(x, ae) for x in a.enc1_widths),
                dec1_widths=tuple(w(x, ae) for x in a.dec1_widths),  # type: ignore[arg-type]
                enc2_widths=tuple(w(x, ae) for x in a.enc2_widths),  # type: ignore[arg-type]
                dec2_widths=tuple(w(x, ae) for x in a.dec2_widths),  # type: ignore[arg-type]
            ),
            gan=dataclasses.replace(
                g,
                base_channels=w(g.base_channels, gan),
                critic_channels=w(g.critic_channels, gan),
                half_len=half_len or g.half_len,
            ),
        )


_DEFAULT = ModelConfig()
SAMPLE_RATE = _DEFAULT.audio.sample_rate  # Hz: every preset, dataset and render inside the engine
SAMPLES_PER_LATENT = _DEFAULT.samples_per_latent  # 4096: one latent step (STFT hop x level-2 frames)
LATENT_RATE_HZ = _DEFAULT.latent_rate_hz  # 10.77 latent steps per second

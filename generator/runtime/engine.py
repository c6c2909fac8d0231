"""ONNX Runtime inference: a loaded preset turns coordinates + conditioning into latents, and latents into audio.

Plain numpy in and out, no torch. All randomness comes from explicit seeds: generator noise is drawn per half
and decoder noise per decoder window from ``SeedSequence([seed, network, index])``, so the same seed, preset and
conditioning reproduce the same samples bit for bit on the same machine, whatever the chunking.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from generator.errors import ConditioningError, PresetError
from generator.runtime import output_stage, spectral
from generator.runtime.conditioning import model_inputs, stream_values
from generator.runtime.join_repair import repair_joins
from generator.runtime.model_config import PHASES
from generator.runtime.output_stage import OutputSettings
from generator.runtime.phase_vocoder import VocoderPhase
from generator.runtime.preset import Preset, check_sha256, load_preset

logger = logging.getLogger(__name__)

_NET_IDS = {"generator": 1, "decoder2": 2, "decoder1": 3}
MAX_BATCH = 16  # decoder windows per call: as fast as 64 here and ~120 MB less resident memory (BENCHMARKS.md)
PRECISIONS = ("auto", "fp32", "int8")


def _session(path: Path, threads: int | None, spin: bool = True, arena: bool = True) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.enable_cpu_mem_arena = arena
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads or 0
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise PresetError(f"{path}: ONNX Runtime cannot load this model ({exc}); re-export the preset") from exc


@dataclass
class DecodeState:
    """What carries over between streaming decode calls: the iSTFT tail, the next decoder window index and the
    phase vocoder's state (phase="vocoder")."""

    istft: spectral.StreamingIstft
    next_window: int = 0
    vocoder: VocoderPhase | None = None


class Engine:
    """A preset loaded into ONNX Runtime sessions.

    Shapes: coordinates (halves, half_len, coord_dim); latents (steps, 2 * latent_dim) with dims
    [0, latent_dim) the left channel; audio float32 (2, samples) at 44.1 kHz, samples_per_latent per latent step.

    precision: "auto" runs the preset's int8 decoders when it ships them and their quality guard passed at
    export (metrics["optimisation"]["int8"]), else fp32; "fp32" never uses them; "int8" requires them.
    max_batch: decoder windows per ONNX Runtime call. istft: "fast" (blocked spectral.StreamingIstft, the
    default) or "reference" (the one-pass spectral.istft per call, for comparisons; not for streaming).
    spin: let ONNX Runtime's worker threads spin while waiting (off by default: on a machine shared with a DAW
    spinning threads steal the cores the audio needs, and 2-thread decoding was ~2x slower with it).
    arena: ONNX Runtime's CPU memory arena (faster repeated calls, higher resident memory).
    joins: "repair" (default) replaces each decoder window's edge frames before the iSTFT
    (generator.runtime.join_repair);
    "raw"
    plays the decoders' spectra as they are (for comparisons with the PyTorch pipeline).
    phase: "decoder" plays decoder1's phase as it is; "vocoder" makes the phase from the decoded magnitudes
    instead (generator.runtime.phase_vocoder: decoder1's phase repeats every 4 frames, which buzzes at 43 Hz; measured
    trade-offs there), restarting it at attacks but never at decoder-window joins; "vocoder-joins" restarts at
    attacks on joins too (percussive presets); None (default) = the preset's ``audio.phase``.
    guidance: how strongly the conditioning acts, None = the preset's ``default_guidance``: latents are
    u + g (c - u) with c the conditioned and u the unconditioned generator output (same coordinates and noise;
    the models were trained with condition dropout, so u is their unconditioned music). 1 runs the generator
    once; any other value twice (the generator is ~2 % of the chain).
    output: the output stage (generator.runtime.output_stage): loudness target, true-peak ceiling and the user's gain;
    None = the defaults (-18 LUFS, -1 dBTP, 0 dB). :meth:`decode` returns the decoders' raw level;
    :meth:`finish` (used by :meth:`generate` and the bar-keyed renderer) applies the stage.
    """

    def __init__(
        self,
        preset: Preset,
        threads: int | None = None,
        precision: str = "auto",
        max_batch: int = MAX_BATCH,
        istft: str = "fast",
        spin: bool = False,
        arena: bool = True,
        joins: str = "repair",
        guidance: float | None = None,
        phase: str | None = None,
        output: OutputSettings | None = None,
    ):
        if output is not None and not isinstance(output, OutputSettings):
            raise PresetError(f"output must be an OutputSettings, got {type(output).__name__}")
        self.output = output or OutputSettings()
        if precision not in PRECISIONS:
            raise PresetError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if istft not in ("fast", "reference"):
            raise PresetError(f"istft must be 'fast' or 'reference', got {istft!r}")
        if joins not in ("repair", "raw"):
            raise PresetError(f"joins must be 'repair' or 'raw', got {joins!r}")
        self.joins = joins
        phase = preset.config.audio.phase if phase is None else phase
        if phase not in PHASES:
            raise PresetError(f"phase must be one of {', '.join(PHASES)}, got {phase!r}")
        self.phase = phase
        self.guidance = float(preset.config.gan.default_guidance if guidance is None else guidance)
        if not (np.isfinite(self.guidance) and 0.0 <= self.guidance <= 10.0):
            raise PresetError(f"guidance must be between 0 and 10 (1 = as trained), got {guidance!r}")
        if max_batch < 1:
            raise PresetError(f"max_batch must be a positive number of decoder windows, got {max_batch}")
        self.preset = preset
        self.config = preset.config
        self.threads = threads
        self.max_batch = int(max_batch)
        self.istft = istft
        paths = {name: preset.model_path(name) for name in ("generator", "decoder2", "decoder1")}
        self.precision = self._resolve_precision(precision)
        if self.precision == "int8":
            paths.update(self._int8_paths())
        self.model_files = paths
        self.sessions = {name: _session(path, threads, spin, arena) for name, path in paths.items()}
        self._noise_len = {}
        for name, sess in self.sessions.items():
            shapes = {i.name: i.shape for i in sess.get_inputs()}
            self._noise_len[name] = int(shapes["noise"][1]) if "noise" in shapes else 0
        self._gen_inputs = {i.name for i in self.sessions["generator"].get_inputs()}

    @classmethod
    def load(
        cls, path: str | Path, threads: int | None = None, search: tuple[str | Path, ...] = (), **options
    ) -> Engine:
        """Load a preset by name or path; `options` are precision, max_batch, istft, spin, arena, joins, guidance,
        phase, output (see the class)."""
        return cls(load_preset(path, search=search), threads=threads, **options)

    # -- precision ------------------------------------------------------------------------------------------
    def _int8_note(self) -> dict:
        note = (self.preset.metrics.get("optimisation") or {}).get("int8") or {}
        return note if isinstance(note, dict) else {}

    def _resolve_precision(self, precision: str) -> str:
        note = self._int8_note()
        if precision == "fp32":
            return "fp32"
        if precision == "int8":
            if not note.get("files"):
                raise PresetError(
                    f"preset {self.preset.name!r} ships no int8 decoders; use precision 'fp32' or 'auto', or "
                    "re-export it with int8 (training.export.export_preset(..., int8='static'))"
                )
            if not (note.get("quality") or {}).get("passed"):
                logger.warning("preset %s: int8 decoders failed their quality guard at export (%s); using them "
                               "because precision 'int8' was asked for", self.preset.name, note.get("quality"))
            return "int8"
        return "int8" if note.get("files") and (note.get("quality") or {}).get("passed") else "fp32"

    def _int8_paths(self) -> dict[str, Path]:
        """The int8 decoder files, each checked against the sha256 recorded at export."""
        out = {}
        for name, entry in self._int8_note()["files"].items():
            if name not in ("decoder1", "decoder2"):
                continue
            path = (self.preset.path / entry["file"]).resolve()
            if not path.is_file():
                raise PresetError(f"preset {self.preset.name!r}: int8 {name} file {path} is missing")
            check_sha256(path, entry["sha256"], f"preset {self.preset.name!r} (int8 {name})", "preset.json",
                         "restore it, re-export the preset, or use precision 'fp32'")
            out[name] = path
        return out

    # -- conditioning ---------------------------------------------------------------------------------------
    def conditioning_inputs(
        self, conditioning: Mapping[str, float | np.ndarray] | None, halves: int
    ) -> dict[str, np.ndarray]:
        """User conditioning values -> the generator's cond_scalar / cond_curve (see
        :func:`generator.runtime.conditioning.model_inputs`; errors name this preset)."""
        try:
            return model_inputs(self.preset.conditioning, conditioning, halves, self.config.gan.half_len)
        except ConditioningError as exc:
            raise ConditioningError(f"preset {self.preset.name!r}: {exc}") from None

    # -- noise ------------------------------------------------------------------------------------------------
    def noise(self, network: str, seed: int, first: int, count: int) -> np.ndarray:
        """Standard-normal noise for items [first, first + count) of a network, (count, N) float32."""
        n = self._noise_len[network]
        out = np.empty((count, n), dtype=np.float32)
        for j in range(count):
            rng = np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFF, _NET_IDS[network], first + j]))
            out[j] = rng.standard_normal(n, dtype=np.float32)
        return out

    # -- generator --------------------------------------------------------------------------------------------
    def latents(
        self,
        coords: np.ndarray,
        conditioning: Mapping[str, float | np.ndarray] | None = None,
        noise: np.ndarray | None = None,
        seed: int = 0,
        first_half: int = 0,
    ) -> np.ndarray:
        """Coordinates (halves, half_len, coord_dim) -> latents (halves * half_len, 2 * latent_dim) float32.

        noise: explicit (halves, N) generator noise, or None to draw it from (seed, first_half + i)."""
        coords = np.ascontiguousarray(coords, dtype=np.float32)
        g = self.config.gan
        if coords.ndim != 3 or coords.shape[1:] != (g.half_len, g.coord_dim):
            raise ValueError(f"coords must be (halves, {g.half_len}, {g.coord_dim}), got {coords.shape}")
        halves = coords.shape[0]
        if noise is None:
            noise = self.noise("generator", seed, first_half, halves)
        feeds = {"coords": coords, "noise": np.ascontiguousarray(noise, dtype=np.float32)}
        feeds.update(self.conditioning_inputs(conditioning, halves))
        feeds = {k: v for k, v in feeds.items() if k in self._gen_inputs}
        out = self._generate(feeds, halves)
        conditioned = [k for k in ("cond_scalar", "cond_curve") if k in feeds]
        if self.guidance != 1.0 and conditioned:
            plain = self._generate({**feeds, **{k: np.full_like(feeds[k], np.nan) for k in conditioned}}, halves)
            out = plain + np.float32(self.guidance) * (out - plain)
        return out.reshape(halves * g.half_len, 2 * self.config.autoencoder.latent_dim)

    def _generate(self, feeds: dict[str, np.ndarray], halves: int) -> np.ndarray:
        out = []
        for i in range(0, halves, self.max_batch):
            part = {k: v[i : i + self.max_batch] for k, v in feeds.items()}
            out.append(self.sessions["generator"].run(["latents"], part)[0])
        return np.concatenate(out)

    # -- decoders ---------------------------------------------------------------------------------------------
    def decode_spectra(
        self, latents: np.ndarray, seed: int = 0, first_window: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Latents (T, 2 * dim), T a multiple of dec2_window -> (magnitude, phase), each (2, T * frames, bins).

        Decoder windows are independent; window w of the piece gets noise from (seed, first_window + w)."""
        ae = self.config.autoencoder
        t = latents.shape[0]
        if t % ae.dec2_window:
            raise ValueError(f"latent steps ({t}) must be a multiple of the decoder window ({ae.dec2_window})")
        windows = t // ae.dec2_window
        dim = ae.latent_dim
        # (2 channels x windows) items, channel-major
        lat = np.ascontiguousarray(
            np.asarray(latents, np.float32).reshape(windows, ae.dec2_window, 2, dim).transpose(2, 0, 1, 3)
        ).reshape(2 * windows, ae.dec2_window, dim)
        n2 = np.concatenate([self.noise("decoder2", seed, 2 * (first_window + w) + c, 1)
                             for c in range(2) for w in range(windows)]) if self._noise_len["decoder2"] else None
        n1 = np.concatenate([self.noise("decoder1", seed, 2 * (first_window + w) + c, 1)
                             for c in range(2) for w in range(windows)]) if self._noise_len["decoder1"] else None
        frames = self._run_batched("decoder2", {"latents": lat, "noise": n2}, ["frames"])[0]
        mag, phase = self._run_batched("decoder1", {"frames": frames, "noise": n1}, ["magnitude", "phase"])
        bins = mag.shape[-1]
        return mag.reshape(2, windows * ae.dec1_window, bins), phase.reshape(2, windows * ae.dec1_window, bins)

    def _run_batched(self, name: str, feeds: dict[str, np.ndarray | None], outputs: list[str]) -> list[np.ndarray]:
        feeds = {k: v for k, v in feeds.items() if v is not None}
        n = next(iter(feeds.values())).shape[0]
        parts = [
            self.sessions[name].run(outputs, {k: v[i : i + self.max_batch] for k, v in feeds.items()})
            for i in range(0, n, self.max_batch)
        ]
        return [np.concatenate([p[j] for p in parts]) for j in range(len(outputs))]

    def decode(self, latents: np.ndarray, seed: int = 0, state: DecodeState | None = None) -> np.ndarray:
        """Latents (T, 2 * dim) -> stereo audio (2, T * samples_per_latent) float32 at the decoders' own level
        (not limited: peaks may exceed 1; :meth:`finish` makes it safe to play).

        With a `state`, decoding continues a stream (carrying the iSTFT tail and window index): the
        concatenated outputs of successive calls equal one call on the concatenated latents. Without one,
        the final iSTFT tail is dropped so the output is exactly T * samples_per_latent long.

        Long inputs are decoded in chunks of max_batch / 2 windows (both channels in one call), each going
        through both decoders and the iSTFT before the next starts: the same samples as one pass, with
        memory bounded by the chunk instead of the piece."""
        if state is None:
            state = self.new_decode_state()  # without a state the iSTFT tail is simply not kept
        win = self.config.autoencoder.dec2_window
        if latents.shape[0] % win:
            raise ValueError(f"latent steps ({latents.shape[0]}) must be a multiple of the decoder window ({win})")
        step = max(1, self.max_batch // 2) * win
        parts = []
        for i in range(0, latents.shape[0], step):
            chunk = latents[i : i + step]
            mag, phase = self.decode_spectra(chunk, seed=seed, first_window=state.next_window)
            state.next_window += chunk.shape[0] // win
            if self.joins == "repair":  # in place: decode_spectra's arrays are fresh
                mag = repair_joins(mag, self.config.autoencoder.dec1_window, inplace=True)
            if state.vocoder is not None:
                phase = state.vocoder(mag)
            parts.append(state.istft.process(mag, phase))
        if not parts:
            return np.zeros((2, 0), np.float32)
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    @property
    def output_gain_db(self) -> float:
        """The output stage's gain (dB): the preset's loudness match to the target plus the user's gain."""
        return self.output.preset_gain_db(self.config.audio.loudness_lufs)

    def finish(self, audio: np.ndarray, gain_db: float = 0.0) -> np.ndarray:
        """The output stage on one block of decoded audio (2, n): loudness match, the user's gain (the output
        settings' plus `gain_db`), then held under the true-peak ceiling. The block is limited on its own (no
        state, no latency): the same block always gives the same samples."""
        return output_stage.apply(audio, self.output_gain_db + gain_db, self.output.ceiling_dbtp,
                                  self.config.audio.sample_rate)

    def new_decode_state(self) -> DecodeState:
        workers = 1 if self.istft == "reference" else max(1, self.threads or 1)  # FFT threads = ORT threads
        audio = self.config.audio
        window = 0 if self.phase == "vocoder-joins" else self.config.autoencoder.dec1_window  # resets at joins?
        vocoder = VocoderPhase(2, audio.bins, audio.n_fft, audio.hop, window) if self.phase != "decoder" else None
        return DecodeState(istft=spectral.StreamingIstft(channels=2, cfg=audio, workers=workers), vocoder=vocoder)

    def generate(
        self,
        seconds: float,
        conditioning: Mapping[str, float | np.ndarray] | None = None,
        seed: int = 0,
        truncation: float | None = None,
        finish: bool = True,
    ) -> np.ndarray:
        """Convenience: `seconds` of stereo audio from the start of the seeded stream, (2, samples) float32.
        A phase condition not given follows the tempo with a bar line at the first sample. finish=True passes it
        through the output stage (:meth:`finish`), False gives the decoders' raw level."""
        from generator.runtime.coords import CoordinateStream

        if not np.isfinite(seconds) or seconds <= 0:
            raise ConditioningError(f"seconds must be a positive number, got {seconds}")
        cfg = self.config
        samples = int(round(seconds * cfg.audio.sample_rate))
        steps = -(-samples // cfg.samples_per_latent)
        halves = -(-steps // cfg.gan.half_len)
        stream = CoordinateStream(cfg.gan, seed=seed, truncation=truncation)
        values = stream_values(self.preset.conditioning, conditioning, cfg, 0, halves * cfg.gan.half_len)
        lat = self.latents(stream.halves(0, halves), values, seed=seed)
        steps_dec = -(-steps // cfg.autoencoder.dec2_window) * cfg.autoencoder.dec2_window
        audio = self.decode(lat[:steps_dec], seed=seed)[:, :samples]
        return self.finish(audio) if finish else audio


def default_threads() -> int:
    return max(1, min(2, os.cpu_count() or 1))

"""How long the renderer takes, preset by preset (pure): the look-ahead and the margin of a change follow it.

A change (a tempo step, a control, a seed) re-renders from a point a margin ahead of the play head; the margin is
twice the longest recent render, so the re-render is done before the play head gets there. Kept per preset: with
one history for all, a switch back from a light preset (piano) left the margin at the light preset's pieces, 0.15 s
for techno's next tempo step where techno's own renders asked for 0.24-0.34 s (the live engine in process, techno
and piano in turn, a tempo step five seconds after each switch back).
"""

from __future__ import annotations

from collections import deque

PIECES_KEPT = 16  # render times of pieces of an epoch already running, per preset
EPOCHS_KEPT = 8  # render times of an epoch's first piece (its decode warm-up and grid), per preset
MARGIN_EXTRA_S = 0.02
# a cut inside a piece (a host's tempo step, a "now" change) re-renders from right there, so little is left in the
# ring: a light preset's pieces render in 0.3 ms (latents decoded before) to 47 ms (a decode), and with only the cheap
# ones timed its margin was 21 ms; a worker kept from its core that long on a busy two-core machine ran the ring dry
# (2 ms of silence at a stopped MIDI host's first beats, in about one run of five)
CUT_MARGIN_MIN_S = 0.1


class RenderTimes:
    """Recent render times (seconds) of running pieces and of epochs' first pieces, per preset."""

    def __init__(self) -> None:
        self._pieces: dict[str, deque[float]] = {}
        self._epochs: dict[str, deque[float]] = {}

    def add(self, preset: str, seconds: float, first_of_epoch: bool) -> None:
        kept = self._epochs if first_of_epoch else self._pieces
        kept.setdefault(preset, deque(maxlen=EPOCHS_KEPT if first_of_epoch else PIECES_KEPT)).append(seconds)

    def worst(self, preset: str | None = None, epochs: bool = True) -> float | None:
        """The longest recent render of ``preset`` (None: of any preset); its running pieces only without
        ``epochs``. None where nothing was timed."""
        kinds = (self._pieces, self._epochs) if epochs else (self._pieces,)
        times = [t for kind in kinds for name, kept in kind.items() if preset in (None, name) for t in kept]
        return max(times) if times else None

    def margin(self, preset: str, new_epoch: bool, fallback_s: float, cut: bool = False) -> float:
        """Seconds ahead of the play head a change in ``preset`` must start (``new_epoch``: the change starts an
        epoch, whose first piece costs more; ``cut``: it cuts the piece it falls in, and is at least
        CUT_MARGIN_MIN_S away). A preset not timed yet: the longest render of any preset, else ``fallback_s``."""
        worst = self.worst(preset, epochs=new_epoch)
        if worst is None:
            worst = self.worst()
        margin = (2.0 * worst if worst is not None else fallback_s) + MARGIN_EXTRA_S
        return max(margin, CUT_MARGIN_MIN_S) if cut else margin

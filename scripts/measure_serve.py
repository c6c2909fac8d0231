"""Start-up time and peak memory of the daemon: `python scripts/measure_serve.py [PRESET] [SECONDS]`.

Starts `musika serve` (WAV output, internal clock, no MIDI), reports the time from process start to its ready
line ("musika: serving ..."), to the first non-silent sample reaching the output (the real-time WAV sink's partial file,
polled every 10 ms) and the peak resident memory sampled from /proc every 0.2 s (Linux).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time


def main() -> int:
    preset = sys.argv[1] if len(sys.argv) > 1 else "techno"
    seconds = sys.argv[2] if len(sys.argv) > 2 else "20"
    peak = [0]
    heard: list[float | None] = [None]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.monotonic()
        p = subprocess.Popen([sys.executable, "-m", "musika", "serve", "--preset", preset, "--output", "wav",
                              "--sync", "internal", "--duration", seconds, "--osc-port", "0", "--no-midi",
                              "--control-log", ""], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             cwd=tmp)

        def sample() -> None:
            while p.poll() is None:
                try:
                    with open(f"/proc/{p.pid}/status") as fh:
                        for line in fh:
                            if line.startswith("VmRSS"):
                                peak[0] = max(peak[0], int(line.split()[1]))
                except OSError:
                    pass
                time.sleep(0.2)

        def first_sound() -> None:
            wav = os.path.join(tmp, "runs", "musika-live.wav.partial")  # renamed when the sink closes
            while p.poll() is None and heard[0] is None:
                try:
                    with open(wav, "rb") as fh:
                        data = fh.read()
                    start = data.find(b"data", 12, 512)
                    if start > 0 and any(data[start + 8 :]):
                        heard[0] = time.monotonic() - t0
                except OSError:
                    pass
                time.sleep(0.01)

        threading.Thread(target=sample, daemon=True).start()
        threading.Thread(target=first_sound, daemon=True).start()
        ready = None
        for line in p.stdout:
            if ready is None and line.startswith("musika: serving"):
                ready = time.monotonic() - t0
                print(line.strip())
        p.wait()
    shown = f"{ready:.2f} s" if ready is not None else "never"
    sound = f"{heard[0]:.2f} s" if heard[0] is not None else "never"
    print(f"ready after {shown} (process start to the ready line); first audio after {sound}; "
          f"peak RSS {peak[0] / 1024:.0f} MB; rc {p.returncode}")
    return p.returncode


if __name__ == "__main__":
    sys.exit(main())

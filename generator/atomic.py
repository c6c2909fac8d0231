"""Atomic file and directory replacement: a reader sees the old version or the new one, never half of one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to a temporary sibling of ``path`` and rename it into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def replace_dir(tmp: str | Path, final: str | Path) -> Path:
    """Move the finished directory ``tmp`` to ``final``, replacing what is there (renames only; the old copy is
    removed after the new one is in place)."""
    tmp, final = Path(tmp), Path(final)
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    return final

"""Offline rendering: sessions of stems, effect chains and the mixdown, written to audio files."""

"""The demo's live progress: one line redrawn in place on a terminal, plain lines otherwise.

Role: :class:`Progress` shows the current status line and permanent notes (a failure injected, a restart seen).
On a TTY the status line is redrawn in place (carriage return, erase line) with a small bar; when the output is
a pipe or a file (CI, ``scripts/demo | tee``) every changed status becomes a plain timestamped line, at most one
per ``min_interval`` seconds, and nothing but printable text is written.

Invariants: standard library only; the in-place line is cut to the terminal's width (a wrapped line could not
be redrawn); notes and the final ``close()`` always leave the cursor at the start of a
fresh line; the clock is injected (``now``), never read here.
"""

from __future__ import annotations

import shutil
from typing import TextIO

BAR_WIDTH = 20


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    """``[#####.....]`` for a fraction in 0..1 (clamped)."""
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


class Progress:
    """Status line and notes, for a terminal (``tty=True``) or for plain text."""

    def __init__(self, out: TextIO, *, tty: bool, min_interval: float = 0.0, columns: int | None = None) -> None:
        self.out = out
        self.tty = tty
        self.columns = columns if columns is not None else shutil.get_terminal_size().columns
        self.min_interval = min_interval
        self._last = ""
        self._last_at: float | None = None
        self._drawn = False

    def status(self, now: float, line: str, fraction: float | None = None) -> None:
        """Show ``line`` (at ``now`` seconds since the start); on a TTY with a bar when ``fraction`` is given."""
        if line == self._last:
            return
        if self.tty:
            shown = f"[{now:6.1f}s] {bar(fraction) + ' ' if fraction is not None else ''}{line}"
            self.out.write("\r\x1b[2K" + shown[: max(20, self.columns - 1)])  # a wrapped line cannot be redrawn
            self.out.flush()
            self._drawn = True
            self._last = line
            return
        if self._last_at is not None and now - self._last_at < self.min_interval:
            return
        self.out.write(f"[{now:5.1f}s] {line}\n")
        self.out.flush()
        self._last, self._last_at = line, now

    def note(self, now: float, text: str) -> None:
        """A line that stays (it is never redrawn over)."""
        self._clear()
        self.out.write(f"[{now:5.1f}s] {text}\n")
        self.out.flush()
        self._last = ""

    def close(self) -> None:
        """End the in-place line, if any, so what follows starts on a fresh line."""
        if self._drawn:
            self.out.write("\n")
            self.out.flush()
            self._drawn = False

    def _clear(self) -> None:
        if self._drawn:
            self.out.write("\r\x1b[2K")
            self._drawn = False

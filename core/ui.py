"""How the core and providers talk to the person at the terminal.

Everything goes to stderr, so stdout stays for results (JSON with ``--json``).
"""

from __future__ import annotations

import sys
from typing import Any


class UI:
    """Progress, warnings and notes for the user. ``quiet`` drops progress.

    Plain lines (:meth:`info`) are written as they are; rich (colours, tables)
    is imported only when something styled is printed, which keeps it out of
    commands that print no warning (``sls-py run``'s cold start)."""

    _console: Any = None

    def __init__(self, *, quiet: bool = False, color: bool | None = None) -> None:
        self.quiet = quiet
        self.color = color

    @property
    def console(self) -> Any:
        """The rich ``Console`` writing to stderr (created on first use)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False, no_color=self.color is False)
        return self._console

    def info(self, message: str) -> None:
        """A line of progress."""
        if not self.quiet:
            stream = sys.stderr
            if stream is not None:
                stream.write(message + "\n")
                stream.flush()

    def step(self, action: str, kind: str, name: str, detail: str = "") -> None:
        """One step of a deploy/remove: ``create function clonezero-dev-work-magic``."""
        if not self.quiet:
            colour = {"create": "green", "update": "yellow", "delete": "red"}.get(action, "cyan")
            extra = f" [dim]{detail}[/dim]" if detail else ""
            self.console.print(f"[{colour}]{action:>7}[/{colour}] {kind} [bold]{name}[/bold]{extra}")

    def warn(self, message: str) -> None:
        """Something the user should know; always shown."""
        self.console.print(f"[yellow]warning:[/yellow] {message}", markup=True, highlight=False)

    def print(self, *objects: Any) -> None:
        """Anything rich can render (tables), to stderr."""
        if not self.quiet:
            self.console.print(*objects)


class PlainUI(UI):
    """A UI that writes plain lines, for tests and non-terminals."""

    def __init__(self, stream: Any = None, *, quiet: bool = False) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.lines: list[str] = []

    def _emit(self, line: str) -> None:
        self.lines.append(line)
        if not self.quiet:
            print(line, file=self.stream)

    def info(self, message: str) -> None:
        self._emit(message)

    def step(self, action: str, kind: str, name: str, detail: str = "") -> None:
        self._emit(f"{action:>7} {kind} {name}" + (f" {detail}" if detail else ""))

    def warn(self, message: str) -> None:
        self._emit(f"warning: {message}")

    def print(self, *objects: Any) -> None:
        self._emit(" ".join(str(o) for o in objects))

"""Progress of long stages, drawn on a terminal's stderr and nowhere else.

Stages report through a `Progress`; the base class draws nothing, so library callers and piped or
--json runs see no redraws. `for_terminal` gives a rich progress display when stderr is a terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO


class Stage:
    """One stage of work in progress: `advance` as parts of it finish."""

    def advance(self, amount: int = 1) -> None:
        """AMOUNT more parts of the stage are done."""


class Progress:
    """Reports stages and notes; this base class reports nothing."""

    def note(self, line: str) -> None:
        """A one-line message about the run (a long run's estimate)."""

    @contextmanager
    def stage(self, description: str, total: int | None = None) -> Iterator[Stage]:
        """A stage named DESCRIPTION of TOTAL parts (None: unknown), shown while the block runs."""
        yield Stage()


class _RichStage(Stage):
    def __init__(self, bar, task) -> None:
        self.bar, self.task = bar, task

    def advance(self, amount: int = 1) -> None:
        self.bar.advance(self.task, amount)


class RichProgress(Progress):
    """Bars on FILE (stderr by default) with rich: one line per stage, kept when the stage ends, with the time
    elapsed and, for a stage of known size, an estimate of the time left (from its rate so far)."""

    def __init__(self, file: IO[str] | None = None, force_terminal: bool | None = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.progress import Progress as Bars

        console = Console(file=file or sys.stderr, force_terminal=force_terminal)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn())
        self.bars = Bars(*columns, console=console)

    def note(self, line: str) -> None:
        self.bars.console.print(line, highlight=False, markup=False)

    @contextmanager
    def stage(self, description: str, total: int | None = None) -> Iterator[Stage]:
        with self.bars:
            task = self.bars.add_task(description, total=total)
            yield _RichStage(self.bars, task)
            self.bars.update(task, completed=total if total is not None else self.bars.tasks[task].completed, total=total or 1)


class NotesOnly(Progress):
    """No bars (stderr is not a terminal), but notes as plain lines on FILE (stderr by default)."""

    def __init__(self, file: IO[str] | None = None) -> None:
        self.file = file

    def note(self, line: str) -> None:
        print(line, file=self.file or sys.stderr, flush=True)


def for_terminal(notes_only: bool = False) -> Progress:
    """Rich progress where stderr is a terminal; notes alone where it is not, or with NOTES_ONLY (--json,
    whose stdout is the summary: a long run still announces its estimate on stderr)."""
    return RichProgress() if sys.stderr.isatty() and not notes_only else NotesOnly()

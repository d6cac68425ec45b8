"""A progress bar with elapsed time and ETA on stderr, drawn by rich only on an interactive
terminal (elsewhere it counts silently: CI logs and pipes get no bar).

It redraws once per finished item, never from a thread of its own, so it takes no time
from the measurements between items.
"""
from __future__ import annotations

import sys


class Progress:
    def __init__(self, total: int, label: str = "", stream=None):
        from convbench.table import console

        self.total, self.label, self.done = max(total, 1), label, 0
        con = console(stream or sys.stderr)
        self._bar = None
        if con.is_interactive:
            from rich import progress as rp
            from rich.table import Column

            self._bar = rp.Progress(
                rp.TextColumn("{task.description}"), rp.BarColumn(bar_width=24),
                rp.MofNCompleteColumn(), rp.TimeElapsedColumn(), rp.TextColumn("eta"),
                rp.TimeRemainingColumn(),
                rp.TextColumn("{task.fields[item]}",
                              table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis")),
                console=con, auto_refresh=False, transient=True,
                redirect_stdout=False, redirect_stderr=False, expand=True)
            self._task = self._bar.add_task(label, total=self.total, item="")
            self._bar.start()

    def __call__(self, item: str = "") -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.update(self._task, advance=1, item=item, refresh=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


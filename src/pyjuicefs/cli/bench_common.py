"""What `bench` and `objbench` share: result cells coloured against JuiceFS's ranges, the result
table drawn in JuiceFS's `+---+` style (through rich), the progress bars, and argument checks.

Colours follow JuiceFS cmd/bench.go and cmd/objbench.go: a value above the range's upper bound is
green, above its lower bound yellow, else red; a cost below the lower cost bound is green, below
the upper one yellow, else red. Colours appear only when stdout is a terminal (rich decides) and
not with --no-color.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ..errors import UserError
from . import options as opt

GREEN, YELLOW, RED = "green", "yellow", "red"

# JuiceFS's table: '+' at every corner and crossing, '-' rules, '|' between cells.
JUICEFS_BOX = box.Box(
    "+-++\n"
    "| ||\n"
    "+-++\n"
    "| ||\n"
    "+-++\n"
    "+-++\n"
    "| ||\n"
    "+-++\n",
    ascii=True,
)


@dataclass
class Row:
    """One result line. value/cost None: the cell shows `text` (e.g. 'not support', 'failed', 'n/a')."""

    item: str
    key: str  # JuiceFS's short name of the row (bigwr, smallrd, put, ...)
    value: float | None
    unit: str
    cost: float | None
    cost_unit: str
    value_text: str = ""
    cost_text: str = ""
    value_color: str | None = None
    cost_color: str | None = None

    def as_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"item": self.item, "name": self.key, "value": self.value, "unit": self.unit,
                             "cost": self.cost, "cost_unit": self.cost_unit}
        if self.value is None:
            d["result"] = self.value_text.strip()
        return d


def color_of(value: float, cost: float, r: Sequence[float]) -> tuple[str, str]:
    """(value colour, cost colour) for a range (value min, value max, cost min, cost max)."""
    vc = GREEN if value > r[1] else YELLOW if value > r[0] else RED
    cc = GREEN if cost < r[2] else YELLOW if cost < r[3] else RED
    return vc, cc


def go_float(v: float, prec: int) -> str:
    """strconv.FormatFloat(v, 'f', prec, 64)."""
    return f"{v:.{prec}f}"


def go_float_g2(v: float) -> str:
    """strconv.FormatFloat(v, 'g', 2, 64): two significant digits, exponent form for tiny values."""
    s = f"{v:.2g}"
    if "e" in s:
        mant, exp = s.split("e")
        sign, digits = exp[0], exp[1:].lstrip("0")
        s = f"{mant}e{sign}{digits.zfill(2)}"
    return s


def console(stderr: bool = False, no_color: bool = False) -> Console:
    # Wide enough that rich never squeezes a JuiceFS-sized table; the table itself does not expand.
    probe = Console(stderr=stderr)
    return Console(stderr=stderr, no_color=no_color or None, highlight=False,
                   width=max(probe.width, 200), soft_wrap=False)


def render_table(con: Console, header: Sequence[str], rows: Sequence[Sequence[Text | str]]) -> None:
    """A table as JuiceFS's printResult draws it: cells right-aligned, headers centred with the odd
    space on the left (as its padding() does; rich would put it on the right)."""
    widths = [len(h) for h in header]
    for r in rows:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c.plain if isinstance(c, Text) else c))
    t = Table(box=JUICEFS_BOX, show_edge=True, show_header=True, pad_edge=True, expand=False,
              header_style="", highlight=False)
    for h, w in zip(header, widths):
        right = (w - len(h)) // 2
        t.add_column(Text(" " * (w - len(h) - right) + h, justify="left"), justify="right", no_wrap=True,
                     overflow="fold")
    for r in rows:
        t.add_row(*r)
    con.print(t)


def cell(text: str, color: str | None) -> Text:
    return Text(text, style=color or "")


def row_cells(r: Row) -> list[Text]:
    """ITEM, VALUE, COST cells; a missing number shows its text alone (no unit)."""
    value = r.value_text if r.value is None else f"{r.value_text} {r.unit}"
    cost = r.cost_text if r.cost is None else f"{r.cost_text} {r.cost_unit}"
    return [cell(r.item, None), cell(value, r.value_color), cell(cost, r.cost_color)]


@contextmanager
def progress_bars(no_color: bool = False) -> Iterator[Progress]:
    """Bars on stderr, one per phase, kept on screen after they finish (as JuiceFS's)."""
    bars = Progress(TextColumn("{task.description}:"), BarColumn(), TaskProgressColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True, no_color=no_color or None), transient=False)
    with bars:
        yield bars


# --- arguments --------------------------------------------------------------------------------


def size_arg(value: str, unit: str, flag: str, *, allow_zero: bool) -> int:
    n = opt.parse_bytes(value.strip(), unit, flag)
    if n < 0 or (n == 0 and not allow_zero):
        raise UserError(f'invalid value "{value}" for "--{flag}": must be greater than 0')
    return n


def count_arg(value: str, flag: str, *, allow_zero: bool) -> int:
    try:
        n = int(value.strip(), 10)
    except ValueError:
        raise UserError(f'invalid value "{value}" for "--{flag}": expected a whole number') from None
    if n < 0 or (n == 0 and not allow_zero):
        raise UserError(f'invalid value "{value}" for "--{flag}": must be greater than 0')
    return n


def no_color(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "no_color", False))

"""Time-series line charts and hour-of-day bar charts, drawn with Kivy canvas instructions.

People read a line's shape faster than a column of numbers, so the app shows charts and
labels only a few round values on the axes. Gaps in the data (the station was off, or the
phone away and not yet backfilled) break the line instead of bridging it with a straight
segment that never happened.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kivy.graphics import Color, Ellipse, Line, Rectangle
from kivy.metrics import dp

from mobile_app.ui import theme
from mobile_app.ui.widgets import Canvased, draw_text

Point = tuple[float, float]

_TIME_STEPS_S = (60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def nice_step(span: float, count: int) -> float:
    """A round step (1, 2, 2.5 or 5 x 10^n) that cuts ``span`` into about ``count`` parts."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(count, 1)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        if factor * magnitude >= raw:
            return factor * magnitude
    return 10.0 * magnitude


def nice_range(lo: float, hi: float, count: int = 3) -> tuple[float, float, float]:
    """(low, high, step) with round ends that contain ``lo``..``hi``."""
    if hi - lo < 1e-9:
        pad = abs(hi) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    step = nice_step(hi - lo, count)
    return math.floor(lo / step) * step, math.ceil(hi / step) * step, step


def time_step(span_s: float, count: int = 4) -> int:
    """A clock-friendly tick interval (1 min ... 1 day) for a window of ``span_s``."""
    for step in _TIME_STEPS_S:
        if span_s / step <= count:
            return step
    return _TIME_STEPS_S[-1]


def format_number(value: float, step: float) -> str:
    """``value`` with as many decimals as the axis step needs (2.5 steps: "2.5", not "2")."""
    decimals = 0
    while decimals < 3 and abs(step * 10**decimals - round(step * 10**decimals)) > 1e-6:
        decimals += 1
    text = f"{value:.{decimals}f}"
    return "0" if text.strip("-0.") == "" else text


def split_at_gaps(points: Sequence[Point], gap: float) -> list[list[Point]]:
    """Runs of points with no two neighbours further apart than ``gap`` in x."""
    runs: list[list[Point]] = []
    for point in points:
        if runs and point[0] - runs[-1][-1][0] <= gap:
            runs[-1].append(point)
        else:
            runs.append([point])
    return runs


@dataclass
class Series:
    label: str
    colour: theme.RGBA
    points: list[Point] = field(default_factory=list)


@dataclass
class Band:
    """A shaded y range behind the lines (e.g. the "spoiled" zone of freshness)."""

    low: float
    high: float
    colour: theme.RGBA


class LineChart(Canvased):
    """Lines over a time window ending at ``end``; y axis from the data unless fixed."""

    def __init__(
        self,
        *,
        y_fixed: tuple[float, float] | None = None,
        y_format: Callable[[float, float], str] = format_number,
        show_axes: bool = True,
        empty_text: str = "No readings yet",
        **kwargs: Any,
    ) -> None:
        self.series: list[Series] = []
        self.bands: list[Band] = []
        self.start = 0.0
        self.end = 1.0
        self.y_fixed = y_fixed
        self.y_format = y_format
        self.show_axes = show_axes
        self.empty_text = empty_text
        self._signature: tuple[Any, ...] | None = None
        super().__init__(**kwargs)

    def set(
        self,
        series: Sequence[Series],
        start: float,
        end: float,
        bands: Sequence[Band] = (),
    ) -> None:
        shown = [
            Series(s.label, s.colour, [p for p in s.points if start <= p[0] <= end]) for s in series
        ]
        end = max(end, start + 1)
        # Skip the redraw (axis labels are textures) unless the data changed or the window
        # moved by about a pixel: a demo station sends dozens of readings a second.
        pixel_s = (end - start) / 400
        signature = (
            round(start / pixel_s),
            round(end / pixel_s),
            tuple((s.label, len(s.points), s.points[-1] if s.points else None) for s in shown),
            tuple((b.low, b.high) for b in bands),
        )
        if signature == self._signature:
            return
        self._signature = signature
        self.series, self.start, self.end, self.bands = shown, start, end, list(bands)
        self.redraw()

    @property
    def has_data(self) -> bool:
        return any(s.points for s in self.series)

    def _plot_area(self) -> tuple[float, float, float, float]:
        if not self.show_axes:
            return self.x, self.y, self.width, self.height
        left, bottom, top = dp(46), dp(22), dp(8)
        return self.x + left, self.y + bottom, self.width - left - dp(8), self.height - bottom - top

    def _y_range(self) -> tuple[float, float, float]:
        if self.y_fixed is not None:
            lo, hi = self.y_fixed
            return lo, hi, nice_step(hi - lo, 2)
        values = [v for s in self.series for _, v in s.points]
        return nice_range(min(values), max(values)) if values else (0.0, 1.0, 0.5)

    def draw(self) -> None:
        px, py, pw, ph = self._plot_area()
        if pw <= 0 or ph <= 0:
            return
        lo, hi, step = self._y_range()

        def to_screen(t: float, v: float) -> tuple[float, float]:
            fx = (t - self.start) / (self.end - self.start)
            fy = (min(max(v, lo), hi) - lo) / (hi - lo)
            return px + fx * pw, py + fy * ph

        Color(*theme.SURFACE_RAISED)
        Rectangle(pos=(px, py), size=(pw, ph))
        for band in self.bands:
            b0 = py + (max(band.low, lo) - lo) / (hi - lo) * ph
            b1 = py + (min(band.high, hi) - lo) / (hi - lo) * ph
            if b1 > b0:
                Color(*band.colour)
                Rectangle(pos=(px, b0), size=(pw, b1 - b0))
        if self.show_axes:
            self._draw_axes(px, py, pw, ph, lo, hi, step)
        if not self.has_data:
            draw_text(
                self.empty_text,
                px + pw / 2,
                py + ph / 2,
                font_size=theme.FONT_BODY,
                anchor_x="center",
                anchor_y="middle",
            )
            return
        # A gap wider than 1/15 of the window (or 3 samples' spacing) is a real gap.
        for series in self.series:
            pts = series.points
            spacing = (pts[-1][0] - pts[0][0]) / max(len(pts) - 1, 1) if len(pts) > 1 else 0
            gap = max(3 * spacing, (self.end - self.start) / 15)
            Color(*series.colour)
            for run in split_at_gaps(pts, gap):
                flat = [c for t, v in run for c in to_screen(t, v)]
                if len(run) == 1:
                    Ellipse(pos=(flat[0] - dp(2), flat[1] - dp(2)), size=(dp(4), dp(4)))
                else:
                    Line(points=flat, width=dp(1.6), joint="round")
            lx, ly = to_screen(*pts[-1])
            Ellipse(pos=(lx - dp(4), ly - dp(4)), size=(dp(8), dp(8)))

    def _draw_axes(
        self, px: float, py: float, pw: float, ph: float, lo: float, hi: float, step: float
    ) -> None:
        value = lo
        while value <= hi + step / 2:
            y = py + (value - lo) / (hi - lo) * ph
            Color(*theme.OUTLINE)
            Line(points=[px, y, px + pw, y], width=1)
            draw_text(
                self.y_format(value, step), px - dp(6), y, anchor_x="right", anchor_y="middle"
            )
            value += step
        tick = time_step(self.end - self.start)
        # Ticks on round local times (xx:00, xx:30), as a clock would show them.
        offset = time.localtime(self.start).tm_gmtoff
        t = math.ceil((self.start + offset) / tick) * tick - offset
        while t <= self.end:
            x = px + (t - self.start) / (self.end - self.start) * pw
            Color(*theme.OUTLINE)
            Line(points=[x, py, x, py + ph], width=1)
            label = time.strftime("%H:%M", time.localtime(t))
            if px + dp(16) < x < px + pw - dp(16):
                draw_text(label, x, py - dp(4), anchor_x="center", anchor_y="top")
            t += tick


class HourBars(Canvased):
    """Counts per hour of the day (0-23), stacked by species in their palette colours."""

    def __init__(self, **kwargs: Any) -> None:
        self.counts: Mapping[str, Sequence[int]] = {}
        self.colours: Mapping[str, theme.RGBA] = {}
        self.current_hour: int | None = None
        super().__init__(**kwargs)

    def set(
        self,
        counts: Mapping[str, Sequence[int]],
        colours: Mapping[str, theme.RGBA],
        current_hour: int | None = None,
    ) -> None:
        self.counts, self.colours, self.current_hour = counts, colours, current_hour
        self.redraw()

    def draw(self) -> None:
        left, bottom, top = dp(34), dp(22), dp(8)
        px, py = self.x + left, self.y + bottom
        pw, ph = self.width - left - dp(8), self.height - bottom - top
        if pw <= 0 or ph <= 0:
            return
        totals = [sum(c[h] for c in self.counts.values() if len(c) > h) for h in range(24)]
        # Whole calls on the axis: a step of 2.5 calls would be a strange thing to read.
        step = float(math.ceil(nice_step(max(max(totals, default=0), 1), 2)))
        top_value = math.ceil(max(max(totals, default=0), 1) / step) * step
        Color(*theme.SURFACE_RAISED)
        Rectangle(pos=(px, py), size=(pw, ph))
        value = 0.0
        while value <= top_value + step / 2:
            y = py + value / top_value * ph
            Color(*theme.OUTLINE)
            Line(points=[px, y, px + pw, y], width=1)
            draw_text(
                format_number(value, step), px - dp(6), y, anchor_x="right", anchor_y="middle"
            )
            value += step
        slot = pw / 24
        if self.current_hour is not None:
            Color(*theme.with_alpha(theme.ACCENT, 0.12))
            Rectangle(pos=(px + self.current_hour * slot, py), size=(slot, ph))
        for hour in range(24):
            y = py
            for species in sorted(self.counts):
                counts = self.counts[species]
                count = counts[hour] if len(counts) > hour else 0
                if count <= 0:
                    continue
                h = count / top_value * ph
                Color(*self.colours.get(species, theme.UNKNOWN))
                Rectangle(pos=(px + hour * slot + slot * 0.15, y), size=(slot * 0.7, h))
                y += h
        for hour in (0, 6, 12, 18):
            x = px + hour * slot
            draw_text(f"{hour:02d}:00", x, py - dp(4), anchor_x="left", anchor_y="top")
        if not any(totals):
            draw_text(
                "No birds heard today",
                px + pw / 2,
                py + ph / 2,
                font_size=theme.FONT_BODY,
                anchor_x="center",
                anchor_y="middle",
            )

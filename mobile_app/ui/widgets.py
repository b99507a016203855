"""Small building blocks: text, cards, shape badges, the gauge, the focus frame, the banner.

Drawn with Kivy canvas instructions only (no images, no matplotlib), so they scale to any
screen density and render offscreen in tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from kivy.clock import Clock
from kivy.core.text import Label as CoreLabel
from kivy.graphics import (
    Color,
    Ellipse,
    Line,
    Mesh,
    Rectangle,
    RoundedRectangle,
)
from kivy.metrics import dp
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.button import Button
from kivy.uix.label import Label
from kivy.uix.widget import Widget

from mobile_app.ui import theme
from mobile_app.ui.present import Look, Tone, species_colour_index

TONES: dict[str, theme.RGBA] = {
    "good": theme.GOOD,
    "warn": theme.WARN,
    "danger": theme.DANGER,
    "accent": theme.ACCENT,
    "unknown": theme.UNKNOWN,
}


def tone_colour(tone: Tone | str) -> theme.RGBA:
    return TONES.get(tone, theme.UNKNOWN)


def symbol_markup(symbol: str) -> str:
    """Markup that draws ``symbol`` in the symbol font inside a Roboto label."""
    return f"[font={theme.SYMBOL_FONT}]{symbol}[/font]"


def escape(text: str) -> str:
    """Station text (species, concept names) shown in a markup label, drawn as typed."""
    return text.replace("&", "&amp;").replace("[", "&bl;").replace("]", "&br;")


class Text(Label):
    """A label that aligns and shortens within its own box, so long text never overlaps.

    ``wrap=True`` with no ``height`` (and no ``size_hint_y``) grows to fit its lines.
    """

    def __init__(
        self,
        text: str = "",
        *,
        font_size: float = theme.FONT_BODY,
        colour: theme.RGBA = theme.TEXT,
        bold: bool = False,
        halign: str = "left",
        height: float | None = None,
        wrap: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("size_hint_y", None)
        self.grow = wrap and height is None and kwargs["size_hint_y"] is None
        super().__init__(
            text=text,
            font_size=font_size,
            color=colour,
            bold=bold,
            halign=halign,
            valign="middle",
            markup=True,
            shorten=not wrap,
            shorten_from="right",
            height=height if height is not None else font_size * 1.5,
            **kwargs,
        )
        self.bind(size=self._fit)
        if self.grow:
            self.bind(texture_size=self._grow)

    def _fit(self, *_: Any) -> None:
        # A growing label wraps at its width and lets the height follow the lines.
        self.text_size = (self.width, None if self.grow else self.height)

    def _grow(self, *_: Any) -> None:
        self.height = max(self.texture_size[1], self.font_size * 1.5)


def caption(text: str) -> Text:
    """A card's heading: small, muted, upper case, so the value below stands out."""
    return Text(text.upper(), font_size=theme.FONT_SMALL, colour=theme.TEXT_MUTED, bold=True)


def draw_text(
    text: str,
    x: float,
    y: float,
    *,
    font_size: float = theme.FONT_SMALL,
    colour: theme.RGBA = theme.TEXT_MUTED,
    anchor_x: str = "left",
    anchor_y: str = "bottom",
    font_name: str = "Roboto",
    bold: bool = False,
) -> None:
    """Draw ``text`` into the current canvas (for chart axes and badge glyphs)."""
    core = CoreLabel(text=text, font_size=font_size, font_name=font_name, bold=bold)
    core.refresh()
    texture = core.texture
    w, h = texture.size
    left = {"left": x, "center": x - w / 2, "right": x - w}[anchor_x]
    bottom = {"bottom": y, "middle": y - h / 2, "top": y - h}[anchor_y]
    Color(*colour)
    Rectangle(texture=texture, pos=(left, bottom), size=(w, h))


class Canvased(Widget):
    """A widget that redraws its canvas (once per frame at most) when it moves or resizes."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._redraw_trigger = Clock.create_trigger(lambda _dt: self._redraw(), -1)
        self.bind(pos=self.redraw, size=self.redraw)

    def redraw(self, *_: Any) -> None:
        self._redraw_trigger()

    def _redraw(self) -> None:
        self.canvas.clear()
        with self.canvas:
            self.draw()

    def draw(self) -> None:
        raise NotImplementedError


class Card(BoxLayout):
    """A rounded panel holding one topic; an optional tone paints a stripe on its left edge."""

    def __init__(self, *, tone: Tone | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("orientation", "vertical")
        kwargs.setdefault("padding", (theme.PAD + dp(4), theme.PAD, theme.PAD, theme.PAD))
        kwargs.setdefault("spacing", dp(6))
        kwargs.setdefault("size_hint_y", None)
        super().__init__(**kwargs)
        self.tone = tone
        self.bind(minimum_height=self.setter("height"))
        self.bind(pos=self._paint, size=self._paint)

    def set_tone(self, tone: Tone | None) -> None:
        self.tone = tone
        self._paint()

    def _paint(self, *_: Any) -> None:
        self.canvas.before.clear()
        with self.canvas.before:
            Color(*theme.SURFACE)
            RoundedRectangle(pos=self.pos, size=self.size, radius=[theme.RADIUS])
            if self.tone is not None:
                Color(*tone_colour(self.tone))
                RoundedRectangle(
                    pos=(self.x, self.y),
                    size=(dp(6), self.height),
                    radius=[theme.RADIUS, 0, 0, theme.RADIUS],
                )


def fill(widget: Widget, colour: theme.RGBA, radius: float = 0.0) -> None:
    """Give a layout a solid (optionally rounded) background that follows it."""

    def paint(*_: Any) -> None:
        widget.canvas.before.clear()
        with widget.canvas.before:
            Color(*colour)
            RoundedRectangle(pos=widget.pos, size=widget.size, radius=[radius])

    widget.bind(pos=paint, size=paint)
    paint()


def _polygon(cx: float, cy: float, r: float, sides: int, rotation_deg: float) -> list[float]:
    points: list[float] = []
    for i in range(sides):
        a = math.radians(rotation_deg + 360 * i / sides)
        points += [cx + r * math.cos(a), cy + r * math.sin(a)]
    return points


def _fill_polygon(points: Sequence[float]) -> None:
    vertices: list[float] = []
    for i in range(0, len(points), 2):
        vertices += [points[i], points[i + 1], 0, 0]
    Mesh(vertices=vertices, indices=list(range(len(points) // 2)), mode="triangle_fan")


class ShapeBadge(Canvased):
    """A tone-coloured shape with a symbol: circle ✓ fresh, triangle ! spoiling, octagon ✗
    spoiled. The shape alone tells the states apart, for people who cannot tell the colours."""

    def __init__(self, look: Look, **kwargs: Any) -> None:
        self.look = look
        super().__init__(**kwargs)

    def set_look(self, look: Look) -> None:
        if look != self.look:
            self.look = look
            self.redraw()

    def draw(self) -> None:
        cx, cy = self.center
        r = min(self.width, self.height) / 2
        Color(*tone_colour(self.look.tone))
        glyph_y = cy
        if self.look.shape == "triangle":
            # Flat side down; the glyph sits low, where the triangle is wide.
            _fill_polygon(_polygon(cx, cy - r * 0.12, r * 1.05, 3, 90))
            glyph_y = cy - r * 0.25
        elif self.look.shape == "octagon":
            _fill_polygon(_polygon(cx, cy, r, 8, 22.5))
        elif self.look.shape == "diamond":
            _fill_polygon(_polygon(cx, cy, r, 4, 90))
        else:
            Ellipse(pos=(cx - r, cy - r), size=(2 * r, 2 * r))
        draw_text(
            self.look.symbol,
            cx,
            glyph_y,
            font_size=r * (0.9 if self.look.shape == "triangle" else 1.1),
            colour=theme.TEXT_ON_COLOUR,
            anchor_x="center",
            anchor_y="middle",
            font_name=theme.SYMBOL_FONT,
            bold=True,
        )


class Gauge(Canvased):
    """A 240° dial for a 0-1 score, with a tick at the threshold and the score in words."""

    SWEEP_DEG = 240.0

    def __init__(self, **kwargs: Any) -> None:
        self.value: float | None = None
        self.threshold = 0.5
        self.look: Look | None = None
        super().__init__(**kwargs)

    def set(self, value: float | None, threshold: float, look: Look) -> None:
        if (value, threshold, look) == (self.value, self.threshold, self.look):
            return
        self.value, self.threshold, self.look = value, threshold, look
        self.redraw()

    def _angle(self, fraction: float) -> float:
        # Kivy's circle angles run clockwise from 12 o'clock.
        return -self.SWEEP_DEG / 2 + self.SWEEP_DEG * min(max(fraction, 0.0), 1.0)

    def draw(self) -> None:
        cx, cy = self.center
        thickness = dp(10)
        r = min(self.width, self.height) / 2 - thickness
        cy -= r * 0.12  # the open bottom of the dial needs less room than the top
        start = self._angle(0)
        Color(*theme.SURFACE_RAISED)
        Line(circle=(cx, cy, r, start, self._angle(1)), width=thickness, cap="round")
        colour = tone_colour(self.look.tone if self.look else "unknown")
        if self.value is not None and self.value > 0.005:
            Color(*colour)
            Line(circle=(cx, cy, r, start, self._angle(self.value)), width=thickness, cap="round")
        a = math.radians(90 - self._angle(self.threshold))
        Color(*theme.TEXT)
        inner, outer = r - thickness * 1.6, r + thickness * 1.6
        Line(
            points=[
                cx + inner * math.cos(a),
                cy + inner * math.sin(a),
                cx + outer * math.cos(a),
                cy + outer * math.sin(a),
            ],
            width=dp(1.5),
        )
        number = "–" if self.value is None else f"{round(self.value * 100)}"
        draw_text(
            number,
            cx,
            cy + r * 0.12,
            font_size=r * 0.62,
            colour=theme.TEXT,
            anchor_x="center",
            anchor_y="middle",
            bold=True,
        )
        draw_text("of 100", cx, cy - r * 0.34, anchor_x="center", anchor_y="middle")


class FocusFrame(Canvased):
    """The camera frame as a 4:3 outline with the focus box where the concept scored best.

    ``box`` is (x, y, w, h) in fractions of the frame, y from the top as in the image.
    """

    ASPECT = 4 / 3

    def __init__(self, **kwargs: Any) -> None:
        self.box: tuple[float, float, float, float] | None = None
        self.tone: Tone = "accent"
        super().__init__(**kwargs)

    def set(self, box: Sequence[float] | None, tone: Tone) -> None:
        new = None if box is None or len(box) != 4 else (box[0], box[1], box[2], box[3])
        if (new, tone) == (self.box, self.tone):
            return
        self.box, self.tone = new, tone
        self.redraw()

    def draw(self) -> None:
        w = min(self.width, self.height * self.ASPECT)
        h = w / self.ASPECT
        x0, y0 = self.center_x - w / 2, self.center_y - h / 2
        Color(*theme.SURFACE_RAISED)
        Rectangle(pos=(x0, y0), size=(w, h))
        Color(*theme.OUTLINE)
        for i in (1, 2):  # rule-of-thirds guides: where in the frame the box sits
            Line(points=[x0 + w * i / 3, y0, x0 + w * i / 3, y0 + h], width=1)
            Line(points=[x0, y0 + h * i / 3, x0 + w, y0 + h * i / 3], width=1)
        Color(*theme.TEXT_MUTED)
        Line(rectangle=(x0, y0, w, h), width=dp(1.2))
        if self.box is None:
            draw_text("no box", self.center_x, self.center_y, anchor_x="center", anchor_y="middle")
            return
        bx, by, bw, bh = (min(max(v, 0.0), 1.0) for v in self.box)
        bw, bh = min(bw, 1 - bx), min(bh, 1 - by)
        left, bottom = x0 + bx * w, y0 + (1 - by - bh) * h
        colour = tone_colour(self.tone)
        Color(*theme.with_alpha(colour, 0.28))
        Rectangle(pos=(left, bottom), size=(bw * w, bh * h))
        Color(*colour)
        Line(rectangle=(left, bottom, bw * w, bh * h), width=dp(2))


class Bar(Canvased):
    """A horizontal bar (a fraction of its width) on a faint track."""

    def __init__(self, fraction: float, colour: theme.RGBA, **kwargs: Any) -> None:
        self.fraction = fraction
        self.colour = colour
        super().__init__(**kwargs)

    def draw(self) -> None:
        h = min(self.height, dp(12))
        y = self.center_y - h / 2
        Color(*theme.SURFACE_RAISED)
        RoundedRectangle(pos=(self.x, y), size=(self.width, h), radius=[h / 2])
        if self.fraction > 0:
            Color(*self.colour)
            width = max(h, self.width * min(self.fraction, 1.0))
            RoundedRectangle(pos=(self.x, y), size=(width, h), radius=[h / 2])


class Swatch(Canvased):
    """A small coloured dot: a species' colour in lists and legends."""

    def __init__(self, colour: theme.RGBA, **kwargs: Any) -> None:
        self.colour = colour
        kwargs.setdefault("size_hint_x", None)
        kwargs.setdefault("width", dp(16))
        super().__init__(**kwargs)

    def draw(self) -> None:
        r = min(self.width, self.height, dp(14)) / 2
        Color(*self.colour)
        Ellipse(pos=(self.center_x - r, self.center_y - r), size=(2 * r, 2 * r))


class Pill(Text):
    """A rounded tag with a symbol and a word, outlined in its tone (e.g. the link state)."""

    def __init__(self, look: Look, **kwargs: Any) -> None:
        kwargs.setdefault("font_size", theme.FONT_SMALL)
        kwargs.setdefault("halign", "center")
        kwargs.setdefault("height", dp(30))
        super().__init__("", **kwargs)
        self.look = look
        self.bind(pos=self._paint, size=self._paint)
        self.set_look(look)

    def set_look(self, look: Look, detail: str = "") -> None:
        self.look = look
        words = look.word + (f" · {detail}" if detail else "")
        self.text = f"{symbol_markup(look.symbol)}  {escape(words)}"
        self.color = tone_colour(look.tone)
        self._paint()

    def _paint(self, *_: Any) -> None:
        self.canvas.before.clear()
        with self.canvas.before:
            Color(*theme.with_alpha(tone_colour(self.look.tone), 0.16))
            RoundedRectangle(pos=self.pos, size=self.size, radius=[self.height / 2])


class FlatButton(Button):
    """A button drawn in the app's palette; ``selected`` paints it in the accent colour."""

    def __init__(self, text: str, *, selected: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("size_hint_y", None)
        kwargs.setdefault("height", theme.BUTTON_HEIGHT)
        kwargs.setdefault("font_size", theme.FONT_BODY)
        super().__init__(
            text=text,
            markup=True,
            background_normal="",
            background_down="",
            background_color=(0, 0, 0, 0),
            **kwargs,
        )
        self.selected = selected
        self.bind(pos=self._paint, size=self._paint, state=self._paint, disabled=self._paint)
        self._paint()

    def set_selected(self, selected: bool) -> None:
        self.selected = selected
        self._paint()

    def _paint(self, *_: Any) -> None:
        pressed = self.state == "down"
        if self.selected:
            back, self.color = theme.ACCENT, theme.TEXT_ON_COLOUR
        else:
            back, self.color = theme.OUTLINE if pressed else theme.SURFACE_RAISED, theme.TEXT
        # Kivy draws a disabled button's text in disabled_color: keep it readable, only dimmer.
        self.disabled_color = theme.with_alpha(self.color, 0.55)
        if self.disabled:
            back = theme.with_alpha(back, 0.5)
        self.canvas.before.clear()
        with self.canvas.before:
            Color(*back)
            RoundedRectangle(pos=self.pos, size=self.size, radius=[dp(10)])


class Banner(BoxLayout):
    """An alert across the top of every screen: tone, shape, title, message, and a close ✕."""

    def __init__(self, on_dismiss: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(
            orientation="horizontal",
            size_hint_y=None,
            height=0,
            padding=(theme.PAD, dp(8)),
            spacing=theme.GAP,
            opacity=0,
            **kwargs,
        )
        self.severity = "info"
        self.badge = ShapeBadge(
            Look("accent", "i"),
            size_hint=(None, None),
            size=(dp(40), dp(40)),
            pos_hint={"center_y": 0.5},
        )
        texts = BoxLayout(orientation="vertical", spacing=dp(2))
        self.title = Text(font_size=theme.FONT_LARGE, bold=True, colour=theme.TEXT)
        self.message = Text(font_size=theme.FONT_BODY, colour=theme.TEXT, wrap=True, size_hint_y=1)
        self.message.valign = "top"
        texts.add_widget(self.title)
        texts.add_widget(self.message)
        close = FlatButton("✕", font_name=theme.SYMBOL_FONT, size_hint=(None, None))
        close.size = (theme.BUTTON_HEIGHT, theme.BUTTON_HEIGHT)
        close.pos_hint = {"center_y": 0.5}
        close.bind(on_release=lambda *_: on_dismiss())
        self.close_button = close
        badge_box = BoxLayout(size_hint_x=None, width=dp(40))
        badge_box.add_widget(self.badge)
        self.add_widget(badge_box)
        self.add_widget(texts)
        self.add_widget(close)
        self.bind(pos=self._paint, size=self._paint)

    @property
    def shown(self) -> bool:
        return bool(self.height > 0)

    def show(self, look: Look, title: str, message: str, severity: str) -> None:
        self.severity = severity
        self.badge.set_look(look)
        self.title.text = escape(title)
        self.message.text = escape(message)
        self.height = dp(104)  # room for a title and a two-line message
        self.opacity = 1
        self.close_button.disabled = False
        self._paint()

    def hide(self) -> None:
        self.height = 0
        self.opacity = 0
        self.close_button.disabled = True  # an invisible button must not take touches

    def _paint(self, *_: Any) -> None:
        self.canvas.before.clear()
        colour = theme.SEVERITY_COLOURS.get(self.severity, theme.ACCENT)
        with self.canvas.before:
            Color(*theme.SURFACE_RAISED)
            Rectangle(pos=self.pos, size=self.size)
            Color(*colour)
            Rectangle(pos=self.pos, size=(dp(6), self.height))
            Rectangle(pos=self.pos, size=(self.width, dp(2)))


def species_colours(names: Sequence[str] | set[str] | dict[str, Any]) -> dict[str, theme.RGBA]:
    """Each species' colour, the same on every screen (alphabetical slots in the palette)."""
    palette = theme.SPECIES_PALETTE
    return {name: palette[i % len(palette)] for name, i in species_colour_index(names).items()}

"""Colours and type sizes: one palette, where every colour means one thing everywhere.

Green is "good" (fresh, connected, sensor ready), amber "watch" (spoiling, warming up,
reconnecting), red "act" (spoiled, disconnected, sensor fault), blue the neutral accent (the
concept, links) and grey "unknown". Colour never carries meaning alone: each use comes with a
word and a shape (see :mod:`mobile_app.ui.present`).

Sizes are in sp/dp, so the app is readable at arm's length on a phone and on a desktop.
The species palette is Okabe & Ito's (2008), distinguishable with the common colour-vision
deficiencies.
"""

from __future__ import annotations

from typing import Final

from kivy.metrics import dp, sp

RGBA = tuple[float, float, float, float]


def hex_rgba(code: str, alpha: float = 1.0) -> RGBA:
    code = code.lstrip("#")
    r, g, b = (int(code[i : i + 2], 16) / 255 for i in (0, 2, 4))
    return (r, g, b, alpha)


def with_alpha(colour: RGBA, alpha: float) -> RGBA:
    return (colour[0], colour[1], colour[2], alpha)


BACKGROUND: Final = hex_rgba("#0f1318")
SURFACE: Final = hex_rgba("#1a2029")
SURFACE_RAISED: Final = hex_rgba("#242c37")
OUTLINE: Final = hex_rgba("#35404d")
TEXT: Final = hex_rgba("#f2f4f7")
TEXT_MUTED: Final = hex_rgba("#a7b2bf")
TEXT_ON_COLOUR: Final = hex_rgba("#0f1318")

GOOD: Final = hex_rgba("#3fcf7f")
WARN: Final = hex_rgba("#f5b83d")
DANGER: Final = hex_rgba("#ff5d5d")
ACCENT: Final = hex_rgba("#5aaaff")
UNKNOWN: Final = hex_rgba("#7d8996")

SEVERITY_COLOURS: Final = {"info": ACCENT, "warning": WARN, "danger": DANGER}

SPECIES_PALETTE: Final = tuple(
    hex_rgba(c)
    for c in ("#e69f00", "#56b4e9", "#009e73", "#f0e442", "#0072b2", "#d55e00", "#cc79a7")
)
"""Okabe-Ito, black left out (it vanishes on the dark background)."""

SERIES_PALETTE: Final = tuple(
    hex_rgba(c) for c in ("#5aaaff", "#d98cc0", "#b3a4ff", "#4fd1c5", "#d0d6de")
)
"""Lines of measured quantities: none of them green, amber or red, which mean good, watch
and act everywhere else in the app; a gas rising is not a verdict."""

# DejaVu Sans ships with Kivy and has the symbols Roboto lacks (✓ ✗ ⚠ ↗ ↘ …).
SYMBOL_FONT: Final = "DejaVuSans"

FONT_HUGE: Final = sp(34)
FONT_TITLE: Final = sp(22)
FONT_LARGE: Final = sp(19)
FONT_BODY: Final = sp(16)
FONT_SMALL: Final = sp(14)

PAD: Final = dp(12)
GAP: Final = dp(10)
RADIUS: Final = dp(14)
ROW_HEIGHT: Final = dp(34)
BUTTON_HEIGHT: Final = dp(48)
"""Material's minimum touch target."""

"""The privacy filter: a clip in which YAMNet hears a human voice is not kept.

BirdNET-Pi and BirdNET-Go blank clips in which BirdNET's "Human" class fires; the ear gets the
same for free, because YAMNet, which runs on every window for presence anyway, has AudioSet's
human-voice classes. A detection whose clip would hold speech is still stored and sent (a
birder wants the bird), but with no audio and ``clip_withheld = "speech"``.

**Which classes.** AudioSet's speech family (Speech … Whispering), and the voice sounds a
person near the station makes (laughter, singing, chatter, babble, children playing).
*Whistling* is left out: YAMNet hears many songbirds as whistling.

**The threshold, by measurement** (``tests/ear/test_privacy.py`` repeats it): the best voice
class per 0.975 s window over every shipped recording that holds no person (20 great tit
songs, 6 Jura forest clips day and night, three Pennsylvania dawn choruses, the spinetail
soundscape, a grouse drumming, 45 s of a trilling toad: 550 windows) never exceeds 0.10
(the toad; birds stay ≤ 0.03); the VCTK speech clip alone scores ≥ 0.98 in every spoken
window. Mixed into a dawn chorus 6 dB below the birds, consecutive windows of the speech
still reach 0.18-0.24. 0.15 sits between.

**Two windows in a row.** YAMNet can hear one window of a song as speech: the end of a great
tit song over the night forest of the demo soundscape scores 0.89 for Speech in a single
window, while the windows on either side score ≤ 0.05. A person talking fills consecutive
windows (they overlap by half: two in a row are 1.46 s of audio, about one short
sentence). So a voice is *heard* where two consecutive windows both reach the threshold, and
a clip is withheld when its span (pre-roll, call, post-roll) overlaps such a stretch. The
price: a single word shorter than about a second may stay in a clip.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from device.errors import EarModelError

#: The reason stored with a detection whose clip was not kept.
WITHHELD_SPEECH: Final = "speech"
#: YAMNet (AudioSet) display names of the classes that mean "a person is talking nearby".
VOICE_CLASSES: Final = (
    "Speech",
    "Child speech, kid speaking",
    "Conversation",
    "Narration, monologue",
    "Babbling",
    "Speech synthesizer",
    "Shout",
    "Bellow",
    "Whoop",
    "Yell",
    "Children shouting",
    "Screaming",
    "Whispering",
    "Laughter",
    "Singing",
    "Child singing",
    "Rapping",
    "Chatter",
    "Hubbub, speech noise, speech babble",
    "Children playing",
)
#: Best voice class at or above this withholds the clip (measured: module docstring).
DEFAULT_THRESHOLD: Final = 0.15


def voice_class_indices(labels: Sequence[str]) -> list[int]:
    """Where the human-voice classes are among a backbone's labels.

    Raises :class:`~device.errors.EarModelError` when the backbone has none of them: the
    privacy filter could not hear anyone, and must not pretend to.
    """
    wanted = {name.lower() for name in VOICE_CLASSES}
    found = [i for i, label in enumerate(labels) if label.lower() in wanted]
    if not found:
        raise EarModelError(
            "the ear's backbone has none of AudioSet's human-voice classes (Speech, ...), so "
            "the privacy filter cannot hear speech: use the YAMNet backbone, or set "
            "ear.privacy_filter = false if clips of voices may be kept"
        )
    return found


def voice_scores(
    scores: npt.NDArray[np.float32], indices: Sequence[int]
) -> npt.NDArray[np.float32]:
    """The best human-voice class of each window (rows of backbone scores)."""
    if len(scores) == 0:
        return np.zeros(0, dtype=np.float32)
    return np.asarray(scores[:, list(indices)].max(axis=1), dtype=np.float32)


class SpeechGuard:
    """Remembers where voices were heard in a stream; says whether a clip span holds one.

    Windows are added in time order as the backbone analyses them; ``horizon_s`` bounds the
    memory (the longest clip plus margin, as the audio ring does).
    """

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, *, horizon_s: float = 60.0) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"privacy threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.horizon_s = horizon_s
        self._voiced: deque[tuple[float, float]] = deque()  # (start_s, end_s) voice heard
        self._previous: tuple[float, float] | None = None  # the last window, if it was voiced
        self.analysed_until_s = 0.0  # end of the latest analysed window
        self.withheld = 0

    def add(self, start_s: float, end_s: float, voice: float) -> None:
        """One analysed window, in time order (its best human-voice class)."""
        if voice >= self.threshold:
            previous = self._previous
            if previous is not None and previous[1] >= start_s:  # consecutive (overlapping)
                self._voiced.append((previous[0], end_s))
            self._previous = (start_s, end_s)
        else:
            self._previous = None
        self.analysed_until_s = max(self.analysed_until_s, end_s)
        while self._voiced and self._voiced[0][1] < self.analysed_until_s - self.horizon_s:
            self._voiced.popleft()

    def reason(self, start_s: float, end_s: float) -> str | None:
        """``"speech"`` when a voiced window overlaps ``[start_s, end_s]``, else None."""
        for voiced_start, voiced_end in self._voiced:
            if voiced_start < end_s and start_s < voiced_end:
                return WITHHELD_SPEECH
        return None

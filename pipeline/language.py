"""Which writing system a set of texts is in: it picks the sentiment family's base encoder
and the baseline's features. Decided from the letters themselves, with no language model."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

# at most this many characters are looked at (spread over the texts): enough to decide
SAMPLE_CHARACTERS = 200_000


def _is_cjk(char: str) -> bool:
    """Han ideographs, kana and hangul: scripts written without spaces between words."""
    code = ord(char)
    return (0x3040 <= code <= 0x30FF or 0x3400 <= code <= 0x4DBF or 0x4E00 <= code <= 0x9FFF
            or 0xAC00 <= code <= 0xD7AF or 0x1100 <= code <= 0x11FF or 0xF900 <= code <= 0xFAFF
            or 0x20000 <= code <= 0x2FA1F)


@dataclass(frozen=True)
class ScriptMix:
    """Shares of the letters in a sample of texts: Latin, CJK (Han, kana, hangul), other."""

    letters: int
    latin: float
    cjk: float

    @property
    def mostly_latin(self) -> bool:
        """More than half the letters are Latin (an empty sample counts as Latin)."""
        return self.letters == 0 or self.latin > 0.5

    @property
    def cjk_heavy(self) -> bool:
        """At least a fifth of the letters are CJK: words are not separated by spaces."""
        return self.letters > 0 and self.cjk >= 0.2

    def describe(self) -> str:
        return f"{self.letters:,} letters: {self.latin:.0%} Latin, {self.cjk:.0%} CJK, " \
               f"{max(0.0, 1 - self.latin - self.cjk):.0%} other"


def script_mix(texts: Iterable[str]) -> ScriptMix:
    """The shares of Latin and CJK letters among the letters of ``texts`` (digits,
    punctuation and spaces do not count), from at most SAMPLE_CHARACTERS characters."""
    letters = latin = cjk = 0
    seen = 0
    for text in texts:
        if seen >= SAMPLE_CHARACTERS:
            break
        text = str(text)[:2_000]
        seen += len(text)
        for char in text:
            if _is_cjk(char):
                letters += 1
                cjk += 1
            elif char.isalpha():
                letters += 1
                latin += unicodedata.name(char, "").startswith("LATIN")
    if not letters:
        return ScriptMix(0, 0.0, 0.0)
    return ScriptMix(letters, latin / letters, cjk / letters)

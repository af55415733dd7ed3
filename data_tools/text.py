"""Korean text basics shared by every data step (KOREAN.md: normalise to NFC before anything else)."""

from __future__ import annotations

import unicodedata


def nfc(text: str) -> str:
    """NFC-normalise: "한" as one code point, never three conjoining jamo (macOS and some scrapes send NFD)."""
    return unicodedata.normalize("NFC", text)


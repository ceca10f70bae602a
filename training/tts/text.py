"""One spelling of every sentence for every engine: numbers as words, plain punctuation.

Each engine reads "1984", "3.5" or "21st" its own way (espeak-ng's en-us says "nineteen
hundred eighty four"), and pocketsphinx can only align words its dictionary knows. So the
wrappers speak :func:`speakable` text: digits written out in words the way a person reads
them (years in pairs, decimals with "point", ordinals, dates), abbreviations expanded,
quotes and symbols dropped, and only ``. , ? ! ; :`` and in-word apostrophes kept as
punctuation (the engines pause on them; pico and festival markup never sees ``<`` or ``"``).
"""

from __future__ import annotations

import re
import unicodedata

_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)  # fmt: skip
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_WORDS = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}  # fmt: skip
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
_ABBREVIATIONS = {
    "Mr.": "mister", "Mrs.": "missus", "Ms.": "miz", "Dr.": "doctor", "St.": "saint",
    "Prof.": "professor", "Jr.": "junior", "vs.": "versus", "etc.": "et cetera",
}  # fmt: skip
_SYMBOLS = {"&": " and ", "%": " percent", "+": " plus ", "=": " equals ", "@": " at "}
_PUNCTUATION = ".,?!;:"


def cardinal(n: int) -> str:
    """Words for a non-negative integer: 342 -> "three hundred forty two"."""
    if n < 0:
        return "minus " + cardinal(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return _ONES[hundreds] + " hundred" + ("" if rest == 0 else " " + cardinal(rest))
    for scale, name in _SCALES:
        if n >= scale:
            high, rest = divmod(n, scale)
            return cardinal(high) + " " + name + ("" if rest == 0 else " " + cardinal(rest))
    raise AssertionError("unreachable")


def ordinal(n: int) -> str:
    """Words for an ordinal: 21 -> "twenty first"."""
    words = cardinal(n).split()
    last = words[-1]
    if last in _ORDINAL_WORDS:
        words[-1] = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def year(n: int) -> str:
    """Words for a year: 1984 -> "nineteen eighty four", 2005 -> "two thousand five",
    1900 -> "nineteen hundred"."""
    if 2000 <= n <= 2009:
        return cardinal(n)
    high, low = divmod(n, 100)
    if low == 0:
        return cardinal(high) + " hundred"
    return cardinal(high) + " " + ("oh " + _ONES[low] if low < 10 else cardinal(low))


def _number(match: re.Match[str]) -> str:
    text = match.group(0).replace(",", "")
    if "." in text:
        whole, frac = text.split(".")
        return cardinal(int(whole)) + " point " + " ".join(_ONES[int(d)] for d in frac)
    n = int(text)
    if len(text) == 4 and "," not in match.group(0) and 1100 <= n <= 2099:
        return year(n)
    return cardinal(n)


def speakable(text: str) -> str:
    """The text every engine speaks and the aligner aligns (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text)
    text = text.translate(str.maketrans({"‘": "'", "’": "'", "“": " ", "”": " ", "—": ", ",
                                         "–": " to ", "…": "."}))  # fmt: skip
    for abbreviation, words in _ABBREVIATIONS.items():
        text = re.sub(rf"(?<!\w){re.escape(abbreviation)}", words, text)
    text = re.sub(r"\$(\d+)", lambda m: m.group(1) + " dollars", text)
    months = "|".join(_MONTHS)
    text = re.sub(rf"\b({months}) (\d{{1,2}})\b(?!\d|:|\.\d)",
                  lambda m: m.group(1) + " " + ordinal(int(m.group(2))), text)  # fmt: skip
    text = re.sub(r"\b(\d+)(st|nd|rd|th)\b", lambda m: ordinal(int(m.group(1))), text)
    text = re.sub(r"\b(\d{1,2}):(\d{2})\b", lambda m: _clock(int(m.group(1)), int(m.group(2))),
                  text)  # fmt: skip
    text = re.sub(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?", _number, text)
    for symbol, words in _SYMBOLS.items():
        text = text.replace(symbol, words)
    text = re.sub(r"\s+-+\s+", ", ", text)  # a spaced dash is a pause
    text = re.sub(r"(?<=\w)-(?=\w)", " ", text)  # "twenty-four", "well-known"
    text = re.sub(r"(?<![A-Za-z])'|'(?![A-Za-z])", " ", text)  # quotes, not "don't"
    text = re.sub(rf"[^A-Za-z'\s{re.escape(_PUNCTUATION)}]", " ", text)
    text = re.sub(rf"\s+([{re.escape(_PUNCTUATION)}])", r"\1", text)
    text = re.sub(rf"([{re.escape(_PUNCTUATION)}])[{re.escape(_PUNCTUATION)}]+", r"\1", text)
    text = re.sub(r"\s+", " ", text).strip()
    text = text.lstrip(_PUNCTUATION + " ")
    if not re.search(r"[A-Za-z]", text):
        raise ValueError("nothing speakable in the text")
    return text


def _clock(hours: int, minutes: int) -> str:
    if minutes == 0:
        return cardinal(hours) + " o'clock"
    return cardinal(hours) + " " + ("oh " + _ONES[minutes] if minutes < 10 else cardinal(minutes))


def words(text: str) -> list[str]:
    """Lower-case words of speakable text, for the aligner's dictionary lookups."""
    return re.findall(r"[a-z]+(?:'[a-z]+)*", speakable(text).lower())

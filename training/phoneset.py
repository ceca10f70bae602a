"""Phone symbols of every TTS engine and aligner here, mapped to ARPAbet labels.

The corpus labels every phone with the ARPAbet set of training/utterance.py (no stress digits,
``SIL`` for silence) because the reference alignments of real speech use it, so one viseme
model serves training and evaluation. Each engine speaks its own phone alphabet:

* espeak-ng phoneme events with ``espeakINITIALIZE_PHONEME_IPA``: IPA strings, one per
  espeak phoneme; diphthongs (``aɪ``), length marks (``iː``), syllabic consonants (``n̩``,
  ``əl``), r-coloured and centring vowels (``oːɹ``, ``iə``); ``""`` is a pause.
* MBROLA us1/us2/us3 and en1 databases: the SAMPA-like symbols espeak-ng's ``mb-us*`` and
  ``mb-en1`` voices write with ``--pho`` (``@U``, ``p_h``, ``r=`` ...; ``_`` is silence).
* festival: the ``radio`` phone set (kal, ked, the us*_mbrola voices, cmu_us_slt_arctic_hts)
  and the British ``mrpa`` set (rab, don, en1_mbrola).
* flite: its ``cmu`` set (radio's symbols).
* pocketsphinx: ARPAbet plus ``SIL`` and noise fillers such as ``+NSN+``.

Every symbol maps to one or more labels (two at most in the tables); a multi-label symbol
(``oːɹ`` -> AO R) shares its duration between them (training/tts/timeline.py). Nothing is
dropped: a symbol that no table knows raises :class:`UnknownPhoneError`, so a new voice
that brings new phones fails loudly instead of losing time. Sounds English ARPAbet lacks
map to the closest label by mouth shape, listed in ``NEAREST_IPA``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping

from contracts.phones import ARPABET

Labels = tuple[str, ...]


class UnknownPhoneError(ValueError):
    """A phone symbol that no mapping table knows."""


def _table(entries: Mapping[str, str]) -> dict[str, Labels]:
    """Turn ``{"symbol": "AO R"}`` into ``{"symbol": ("AO", "R")}``, checking every label."""
    table = {symbol: tuple(labels.split()) for symbol, labels in entries.items()}
    for symbol, labels in table.items():
        if not 1 <= len(labels) <= 2 or any(label not in ARPABET for label in labels):
            raise AssertionError(f"bad mapping {symbol!r} -> {labels}")
    return table


# --- espeak-ng IPA -----------------------------------------------------------------------

# Units espeak-ng's English voices emit; multi-letter keys are single sounds (diphthongs,
# affricates) that letter-by-letter reading would get wrong. Combinations not listed here
# (``oːɹ``, ``aɪɚ``, ``iə``, ``əl``) are read as a sequence of these units.
ESPEAK_IPA: dict[str, Labels] = _table({
    "": "SIL", "_": "SIL",
    # consonants
    "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "ɡ": "G", "g": "G",
    "m": "M", "n": "N", "ŋ": "NG", "f": "F", "v": "V", "θ": "TH", "ð": "DH",
    "s": "S", "z": "Z", "ʃ": "SH", "ʒ": "ZH", "h": "HH", "tʃ": "CH", "dʒ": "JH",
    "l": "L", "ɫ": "L", "ɹ": "R", "r": "R", "ɻ": "R", "w": "W", "j": "Y", "ʲ": "Y",
    # vowels: FLEECE KIT DRESS TRAP ...
    "i": "IY", "iː": "IY", "ɪ": "IH", "ᵻ": "IH", "ɨ": "IH",
    "e": "EY", "eː": "EY", "ɛ": "EH", "ɛː": "EH", "æ": "AE", "a": "AE",
    "aː": "AA", "ɑ": "AA", "ɑː": "AA", "ɒ": "AA", "ɒː": "AA",
    "ɔ": "AO", "ɔː": "AO", "oː": "AO", "o": "OW",
    "ʌ": "AH", "ɐ": "AH", "ə": "AH", "ɚ": "ER", "ɜ": "ER", "ɜː": "ER", "əɹ": "ER",
    "ʊ": "UH", "ɵ": "UH", "u": "UW", "uː": "UW", "ʉ": "UW", "ʉː": "UW",
    # diphthongs (several accents' spellings of the same mouth movement)
    "aɪ": "AY", "ɑɪ": "AY", "ʌɪ": "AY", "eɪ": "EY", "ei": "EY", "ɛɪ": "EY",
    "ɔɪ": "OY", "oɪ": "OY", "aʊ": "AW", "æʊ": "AW", "ɑʊ": "AW", "ʌʉ": "AW",
    "oʊ": "OW", "əʊ": "OW", "ou": "OW", "ʌʊ": "OW", "əu": "UW",
    # en-us-nyc NURSE ("bird" as [bəɪd]): a central vowel gliding to [i]
    "əɪ": "AH IY",
    # spellings that unit-by-unit reading would get wrong
    "aa": "AA", "eə": "EH AH",
})  # fmt: skip

# Sounds outside English ARPAbet, and the label of the nearest mouth shape. espeak's English
# voices emit the first five ("loch", "button", "butter", "which", Caribbean dental t/d).
NEAREST_IPA: dict[str, Labels] = _table({
    "x": "K",  # voiceless velar fricative: tongue back, jaw like K
    "ʔ": "T",  # glottal stop stands for /t/ ("button"); lips as for T
    "ɾ": "T",  # flap ("butter"); CMU spells it T or D, same viseme
    "ʍ": "W",  # voiceless w ("which")
    "t̪": "T", "d̪": "D",  # dental stops (en-029)
    "ç": "HH", "ɣ": "G", "β": "B", "ɸ": "F", "ɬ": "L", "ʁ": "R", "χ": "K",
})  # fmt: skip

# Marks that carry no phone of their own: stress, length, ties, syllable breaks. espeak's
# phoneme events do not include stress marks, but IPA from other paths (``--ipa``) does.
_IGNORED_MARKS = frozenset("ˈˌ.‿͜͡")
_LENGTH_MARKS = "ːˑ:"
_SYLLABIC = "\u0329"  # combining vertical line below: n̩, l̩, m̩
_IPA_UNITS: dict[str, Labels] = {**ESPEAK_IPA, **NEAREST_IPA}
_LONGEST_UNIT = max(len(unit) for unit in _IPA_UNITS)


def espeak_ipa(symbol: str) -> Labels:
    """ARPAbet labels for one espeak-ng IPA phoneme string.

    Looks the whole string up first; otherwise reads it left to right, longest known unit
    first (so ``aɪɚ`` is AY ER and ``oːɹ`` is AO R), treating a syllabic consonant as schwa
    plus the consonant (CMU spells "button" B AH T AH N). Raises UnknownPhoneError on any
    character it cannot place.
    """
    text = unicodedata.normalize("NFC", "".join(c for c in symbol if c not in _IGNORED_MARKS))
    text = text.replace(":", "ː")
    if text in _IPA_UNITS:
        return _IPA_UNITS[text]
    labels: list[str] = []
    i = 0
    while i < len(text):
        for size in range(min(_LONGEST_UNIT, len(text) - i), 0, -1):
            unit = text[i : i + size]
            if unit in _IPA_UNITS:
                break
        else:
            raise UnknownPhoneError(f"espeak-ng IPA {symbol!r}: no mapping for {text[i]!r}")
        i += size
        if i < len(text) and text[i] in _LENGTH_MARKS:  # length of a unit not listed long
            i += 1
        unit_labels = _IPA_UNITS[unit]
        if i < len(text) and text[i] == _SYLLABIC:
            unit_labels = ("AH", *unit_labels)
            i += 1
        labels.extend(unit_labels)
    return tuple(label for label in labels if label != "SIL") or ("SIL",)


# --- MBROLA ------------------------------------------------------------------------------

# us1/us2/us3 (Babel Technology's American English); symbols from the databases' README
# plus what espeak-ng's mb-us* voices write.
MBROLA_US: dict[str, Labels] = _table({
    "_": "SIL",
    "p": "P", "p_h": "P", "t": "T", "t_h": "T", "4": "T", "k": "K", "k_h": "K",
    "b": "B", "d": "D", "g": "G", "f": "F", "s": "S", "S": "SH", "tS": "CH", "T": "TH",
    "v": "V", "z": "Z", "Z": "ZH", "dZ": "JH", "D": "DH", "m": "M", "n": "N", "N": "NG",
    "l": "L", "l=": "AH L", "r": "R", "r=": "ER", "j": "Y", "w": "W", "h": "HH",
    "i": "IY", "A": "AA", "O": "AO", "u": "UW", "I": "IH", "E": "EH", "{": "AE", "V": "AH",
    "U": "UH", "@": "AH", "EI": "EY", "AI": "AY", "OI": "OY", "@U": "OW", "aU": "AW",
})  # fmt: skip

# en1 (CSTR's "Roger", British English), SAMPA as in the database's README.
MBROLA_EN1: dict[str, Labels] = _table({
    "_": "SIL",
    "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "g": "G", "m": "M", "n": "N",
    "N": "NG", "l": "L", "5": "L", "r": "R", "f": "F", "v": "V", "s": "S", "z": "Z",
    "h": "HH", "w": "W", "j": "Y", "tS": "CH", "dZ": "JH", "T": "TH", "D": "DH", "S": "SH",
    "Z": "ZH",
    "i:": "IY", "A:": "AA", "O:": "AO", "u:": "UW", "3:": "ER", "I": "IH", "e": "EH",
    "{": "AE", "V": "AH", "Q": "AA", "U": "UH", "@": "AH", "eI": "EY", "aI": "AY",
    "OI": "OY", "@U": "OW", "aU": "AW", "I@": "IH AH", "e@": "EH AH", "U@": "UH AH",
})  # fmt: skip

# --- festival, flite ---------------------------------------------------------------------

# festival's "radio" set; flite's "cmu" set uses the same symbols.
FESTIVAL_RADIO: dict[str, Labels] = _table({
    "pau": "SIL", "h#": "SIL", "brth": "SIL", "ssil": "SIL",
    "aa": "AA", "ae": "AE", "ah": "AH", "ao": "AO", "aw": "AW", "ax": "AH", "axr": "ER",
    "ay": "AY", "b": "B", "ch": "CH", "d": "D", "dh": "DH", "dx": "T", "eh": "EH",
    "el": "AH L", "em": "AH M", "en": "AH N", "er": "ER", "ey": "EY", "f": "F", "g": "G",
    "hh": "HH", "hv": "HH", "ih": "IH", "ix": "IH", "iy": "IY", "jh": "JH", "k": "K",
    "l": "L", "m": "M", "n": "N", "nx": "N", "ng": "NG", "ow": "OW", "oy": "OY", "p": "P",
    "r": "R", "s": "S", "sh": "SH", "t": "T", "th": "TH", "uh": "UH", "uw": "UW", "v": "V",
    "w": "W", "y": "Y", "z": "Z", "zh": "ZH",
})  # fmt: skip
FLITE_CMU: dict[str, Labels] = FESTIVAL_RADIO

# festival's British "mrpa" set (rab_diphone, don_diphone, en1_mbrola).
FESTIVAL_MRPA: dict[str, Labels] = _table({
    "#": "SIL",
    "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "g": "G", "m": "M", "n": "N",
    "ng": "NG", "l": "L", "ll": "L", "r": "R", "f": "F", "v": "V", "s": "S", "z": "Z",
    "h": "HH", "w": "W", "y": "Y", "ch": "CH", "jh": "JH", "th": "TH", "dh": "DH",
    "sh": "SH", "zh": "ZH",
    "ii": "IY", "aa": "AA", "oo": "AO", "uu": "UW", "@@": "ER", "i": "IH", "e": "EH",
    "a": "AE", "uh": "AH", "o": "AA", "u": "UH", "@": "AH", "ei": "EY", "ai": "AY",
    "oi": "OY", "ou": "OW", "au": "AW", "i@": "IH AH", "e@": "EH AH", "u@": "UH AH",
})  # fmt: skip

# --- pocketsphinx ------------------------------------------------------------------------

POCKETSPHINX: dict[str, Labels] = {
    **{label: (label,) for label in ARPABET},
    **_table({"+NSN+": "SIL", "+SPN+": "SIL", "+BREATH+": "SIL", "+COUGH+": "SIL",
              "+NOISE+": "SIL", "+SMACK+": "SIL", "+UH+": "SIL", "+UM+": "SIL"}),
}  # fmt: skip

TABLES: dict[str, dict[str, Labels]] = {
    "mbrola-us": MBROLA_US,
    "mbrola-en1": MBROLA_EN1,
    "festival-radio": FESTIVAL_RADIO,
    "festival-mrpa": FESTIVAL_MRPA,
    "flite-cmu": FLITE_CMU,
    "pocketsphinx": POCKETSPHINX,
}


def to_arpabet(phoneset: str, symbol: str) -> Labels:
    """ARPAbet labels for ``symbol`` of ``phoneset`` (a TABLES key or ``"espeak-ipa"``)."""
    if phoneset == "espeak-ipa":
        return espeak_ipa(symbol)
    try:
        table = TABLES[phoneset]
    except KeyError:
        raise ValueError(f"unknown phone set {phoneset!r}") from None
    try:
        return table[symbol]
    except KeyError:
        raise UnknownPhoneError(f"{phoneset} phone {symbol!r} has no ARPAbet mapping") from None

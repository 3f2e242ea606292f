"""Names made comparable: scripts, romanisation, legal forms and words, as tokens.

A name becomes a :class:`NormalizedName`: a *native key* (Japanese, Chinese or Korean characters
with legal forms, spaces and punctuation removed) for comparison in the original script, and one
or more Latin :class:`NameForm` readings for comparison with romanised names:

- NFKC first (full-width letters, half-width katakana, ㈱ → (株)), then case folding;
- common words written in Japanese, Chinese or Korean (貿易, 무역, 工業, 銀行…) become their English
  equivalents, so 남천강무역회사 lines up with "Namchongang Trading";
- legal forms (株式会社, 주식회사, 有限公司, Co., Ltd., Corporation…) are dropped and remembered;
- kana are romanised in Hepburn (jaconv), with a second reading that drops the vowels katakana
  adds to foreign words (パキスタン "pakisutan" → "pakistan", シャリフ "sharifu" → "sharif");
- Hangul is romanised twice, in the Revised Romanization and in McCune–Reischauer without
  diacritics (the spelling of North Korean names in English lists: 단천 "Dancheon" / "Tanchon");
- Han characters are read in pinyin (anyascii): the End User List's kanji names are mostly Chinese
  entities, whose English names use pinyin; Japanese readings would need a dictionary (see
  docs/export-control.md on why pykakasi and cutlet are not used);
- other scripts are transliterated by anyascii; runs of single letters join ("K.O.M.I.D." → komid).

Which libraries and why: jaconv (MIT) and anyascii (ISC) are small, maintained and permissively
licensed; the romanisers that read kanji or apply Korean sound changes (pykakasi,
korean-romanizer) are GPL-3.0, which gsomia's Apache-2.0 licence cannot take in.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import jaconv
from anyascii import anyascii

__all__ = ["NameForm", "NormalizedName", "Normalizer", "WordTables", "hangul_romanized"]

GENERIC_WEIGHT = 0.3  # weight of a generic word ("trading", "group") against a distinctive one
PLACE_WEIGHT = 0.5  # weight of a country or city ("Iran", "Tehran"): half a distinctive word


@dataclass(frozen=True, slots=True)
class WordTables:
    legal_forms: frozenset[str]
    native_legal_forms: tuple[str, ...]
    generic_words: frozenset[str]
    place_words: frozenset[str]
    stop_words: frozenset[str]
    native_words: Mapping[str, str]
    abbreviations: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class NameForm:
    """One Latin reading of a name, ready to compare."""

    tokens: tuple[str, ...]
    weights: tuple[float, ...]
    key: str  # tokens sorted and joined by spaces: word order does not matter
    compact: str  # tokens joined in order without spaces: spacing does not matter
    reading: str  # "latin", "hepburn", "hepburn (loanword)", "revised", "mccune-reischauer"…
    total_weight: float


@dataclass(frozen=True, slots=True)
class NormalizedName:
    original: str
    native: str  # "" when the name has no Japanese, Chinese or Korean characters
    forms: tuple[NameForm, ...]
    dropped: tuple[str, ...]  # legal forms removed, as written

    @property
    def scripts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f.reading for f in self.forms))


# -- scripts -------------------------------------------------------------------------------------

_KANA = "\u3040-\u309f\u30a0-\u30fa\u30fc-\u30ff\u31f0-\u31ff"
_HAN = "\u3005\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HANGUL = "\uac00-\ud7a3"
_CJK_RE = re.compile(f"[{_KANA}{_HAN}{_HANGUL}]")
_RUN_RE = re.compile(f"([{_KANA}]+)|([{_HAN}]+)|([{_HANGUL}]+)")
_NATIVE_DROP_RE = re.compile(r"[\W_]+")

# Hangul: 19 initials, 21 vowels, 28 finals (Unicode order). "-" is no sound.
# fmt: off
_RR_INITIAL = ("g", "kk", "n", "d", "tt", "r", "m", "b", "pp", "s", "ss", "-", "j", "jj", "ch",
               "k", "t", "p", "h")
_MR_INITIAL = ("k", "kk", "n", "t", "tt", "r", "m", "p", "pp", "s", "ss", "-", "ch", "tch", "ch",
               "k", "t", "p", "h")
_RR_VOWEL = ("a", "ae", "ya", "yae", "eo", "e", "yeo", "ye", "o", "wa", "wae", "oe", "yo", "u",
             "wo", "we", "wi", "yu", "eu", "ui", "i")
_MR_VOWEL = ("a", "ae", "ya", "yae", "o", "e", "yo", "ye", "o", "wa", "wae", "oe", "yo", "u",
             "wo", "we", "wi", "yu", "u", "ui", "i")
_FINAL = ("-", "k", "k", "k", "n", "n", "n", "t", "l", "k", "m", "l", "l", "l", "p", "l", "m",
          "p", "p", "t", "t", "ng", "t", "t", "k", "t", "p", "t")
_LIAISON = ("-", "g", "kk", "gs", "n", "nj", "nh", "d", "r", "lg", "lm", "lb", "ls", "lt", "lp",
            "lh", "m", "b", "bs", "s", "ss", "ng", "j", "ch", "k", "t", "p", "h")
# fmt: on
_MR_VOICED = {0: "g", 3: "d", 7: "b", 12: "j"}  # plain ㄱ ㄷ ㅂ ㅈ; aspirates never voice
_SONORANT_FINALS = {4, 8, 16, 21}  # ㄴ ㄹ ㅁ ㅇ: a following plain stop is voiced in MR


def hangul_romanized(text: str, system: str) -> str:
    """Hangul syllables romanised as ``"revised"`` or ``"mccune-reischauer"`` (no diacritics).

    Syllable by syllable, with final consonants neutralised and carried over to a following
    vowel; the fuller sound-change rules are left out, since lists spell names inconsistently
    anyway and the fuzzy comparison absorbs the rest.
    """
    mr = system == "mccune-reischauer"
    out: list[str] = []
    syllables = [ord(c) - 0xAC00 for c in text if 0xAC00 <= ord(c) <= 0xD7A3]
    for i, s in enumerate(syllables):
        lead, vowel, final = s // 588, (s // 28) % 21, s % 28
        prev_final = syllables[i - 1] % 28 if i else None
        if mr:
            initial = _MR_INITIAL[lead]
            voiced = prev_final == 0 or prev_final in _SONORANT_FINALS
            if i and voiced and lead in _MR_VOICED:
                initial = _MR_VOICED[lead]
        else:
            initial = _RR_INITIAL[lead]
        if initial == "-":
            initial = ""
        coda = ""
        if final:
            next_lead = syllables[i + 1] // 588 if i + 1 < len(syllables) else None
            coda = _LIAISON[final] if next_lead == 11 else _FINAL[final]  # 11: ㅇ, no sound
        out.append(initial + (_MR_VOWEL if mr else _RR_VOWEL)[vowel] + coda)
    return "".join(out)


_EPENTHETIC_RE = re.compile(r"(?<=[bcdfghjkmprstvwz])u(?=[bcdfghjkmprstvwz]|$)|(?<=[td])o(?=\W|$)")
_DOUBLE_RE = re.compile(r"([bcdfghjklmnpqrstvwxz])\1")


def _kana(run: str, loanword: bool) -> str:
    text = str(jaconv.kana2alphabet(jaconv.kata2hira(run))).replace("-", "")
    if loanword:  # katakana writes foreign words with added vowels: "pakisutan" for Pakistan
        text = _DOUBLE_RE.sub(r"\1", _EPENTHETIC_RE.sub("", text))
    return text


def _han(run: str) -> str:
    return anyascii(run).lower()


# -- the normaliser --------------------------------------------------------------------------------

_PUNCT_RE = re.compile(r"[^\w\s]|_")
_APOSTROPHES = str.maketrans("", "", "'’`ʼ")


class Normalizer:
    """Turns names into :class:`NormalizedName` values with one set of word tables."""

    def __init__(self, words: WordTables) -> None:
        self.words = words
        self._native_words = sorted(words.native_words.items(), key=lambda kv: -len(kv[0]))
        self._native_legal = sorted(words.native_legal_forms, key=len, reverse=True)
        self.normalize = lru_cache(maxsize=65536)(self._normalize)

    def weight(self, token: str) -> float:
        if token in self.words.generic_words:
            return GENERIC_WEIGHT
        return PLACE_WEIGHT if token in self.words.place_words else 1.0

    def _normalize(self, text: str) -> NormalizedName:
        folded = unicodedata.normalize("NFKC", text).casefold().strip()
        dropped: list[str] = []
        native = ""
        latin = folded
        if _CJK_RE.search(folded):  # the native tables are all CJK: skip them for Latin names
            bare = folded
            for legal in self._native_legal:
                if legal in bare:
                    bare = bare.replace(legal, " ")
                    dropped.append(legal)
            native = _NATIVE_DROP_RE.sub("", bare)
            for word, english in self._native_words:
                if word in latin:
                    latin = latin.replace(word, f" {english} ")
            for legal in self._native_legal:
                latin = latin.replace(legal, " ")
        readings = self._readings(latin)
        forms: list[NameForm] = []
        seen: set[str] = set()
        for reading, romanized in readings:
            made = self._form(romanized, reading, dropped)
            if made is not None and made.key not in seen:
                seen.add(made.key)
                forms.append(made)
        return NormalizedName(text, native, tuple(forms), tuple(dict.fromkeys(dropped)))

    def _readings(self, text: str) -> list[tuple[str, str]]:
        """Latin readings of mixed-script text: one per romanisation variant that matters."""
        if not _CJK_RE.search(text):
            return [("latin", text)]
        kinds = {m.lastindex for m in _RUN_RE.finditer(text)}
        variants: list[tuple[str, bool]] = []  # (reading name, alternative)
        if 1 in kinds:
            variants += [("hepburn", False), ("hepburn (loanword)", True)]
        if 3 in kinds:
            variants += [("revised", False), ("mccune-reischauer", True)]
        if not variants:
            variants = [("pinyin", False)]
        out = []
        for reading, alternative in variants:

            def sub(m: re.Match[str], alternative: bool = alternative) -> str:
                kana, han, hangul = m.groups()
                if kana:
                    return f" {_kana(kana, alternative)} "
                if han:
                    return f" {_han(han)} "
                system = "mccune-reischauer" if alternative else "revised"
                return f" {hangul_romanized(hangul, system)} "

            out.append((reading, _RUN_RE.sub(sub, text)))
        return out

    def _form(self, text: str, reading: str, dropped: list[str]) -> NameForm | None:
        text = anyascii(text.translate(_APOSTROPHES)).lower().replace("&", " and ")
        raw = _PUNCT_RE.sub(" ", text).split()
        tokens = _join_initials(raw)
        w = self.words
        tokens = [w.abbreviations.get(t, t) for t in tokens]
        kept = []
        for t in tokens:
            if t in w.legal_forms:
                dropped.append(t)
            elif t not in w.stop_words:
                kept.append(t)
        if not kept:  # a name that is nothing but legal forms or stop words: keep it whole
            kept = [t for t in tokens if t]
        if not kept:
            return None
        weights = tuple(self.weight(t) for t in kept)
        return NameForm(
            tokens=tuple(kept),
            weights=weights,
            total_weight=sum(weights),
            key=" ".join(sorted(kept)),
            compact="".join(kept),
            reading=reading,
        )


def _join_initials(tokens: Iterable[str]) -> list[str]:
    """Runs of single letters become one token: "k o m i d" → "komid", "a q khan" → "aq khan"."""
    out: list[str] = []
    run = ""
    for t in tokens:
        if len(t) == 1 and t.isalpha():
            run += t
            continue
        if run:
            out.append(run)
            run = ""
        out.append(t)
    if run:
        out.append(run)
    return out

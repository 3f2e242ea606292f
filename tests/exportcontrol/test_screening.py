"""End-user screening: normalisation, romanisation, scores and explanations, list formats, and
precision and recall on the labelled set."""

from __future__ import annotations

from pathlib import Path

import pytest

from gsomia.core.provenance import Provenance
from gsomia.exportcontrol.errors import MalformedScreeningFileError
from gsomia.exportcontrol.evaluation import read_labelled, score, screener_predictions
from gsomia.exportcontrol.loader import load_list, load_sample_lists, load_words
from gsomia.exportcontrol.names import Normalizer, hangul_romanized
from gsomia.exportcontrol.screening import (
    ListFormat,
    MatchStatus,
    Screener,
    ScreeningConfig,
    parse_list,
)
from gsomia.exportcontrol.tables import Concern

from .conftest import FIXTURES, REPORT

TARGET = 0.95


@pytest.fixture(scope="module")
def normalizer() -> Normalizer:
    return Normalizer(load_words())


@pytest.fixture(scope="module")
def screener(normalizer: Normalizer) -> Screener:
    return Screener(load_sample_lists(), normalizer)


def readings(normalizer: Normalizer, text: str) -> list[str]:
    return [" ".join(f.tokens) for f in normalizer.normalize(text).forms]


# -- normalisation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "dropped"),
    [
        (
            "Shahid Hemmat Industrial Group Co., Ltd.",
            "shahid hemmat industrial group",
            {"co", "ltd"},
        ),
        ("KALAYE ELECTRIC CORPORATION", "kalaye electric", {"corporation"}),
        ("K.O.M.I.D.", "komid", set()),
        ("Ｋａｌａｙｅ　Ｅｌｅｃｔｒｉｃ", "kalaye electric", set()),
        ("Sharif Univ. of Tech.", "sharif university technology", set()),
        ("Türkiye Makina Sanayi A.Ş.", "turkiye makina sanayi as", set()),
    ],
)
def test_latin_normalisation(
    normalizer: Normalizer, text: str, expected: str, dropped: set[str]
) -> None:
    norm = normalizer.normalize(text)
    assert readings(normalizer, text)[0] == expected
    assert set(norm.dropped) == dropped


def test_japanese_legal_forms_and_native_key(normalizer: Normalizer) -> None:
    norm = normalizer.normalize("㈱シャヒード・ヘマット工業グループ")
    assert norm.native == "シャヒードヘマット工業グループ"
    assert "(株)" in norm.dropped
    assert "shahid hemat industrial group" in readings(normalizer, norm.original)


def test_korean_legal_forms_and_both_romanizations(normalizer: Normalizer) -> None:
    norm = normalizer.normalize("주식회사 남천강무역")
    assert "주식회사" in norm.dropped
    assert readings(normalizer, norm.original) == ["namcheongang trading", "namchongang trading"]
    assert [f.reading for f in norm.forms] == ["revised", "mccune-reischauer"]


@pytest.mark.parametrize(
    ("hangul", "revised", "mccune"),
    [
        ("남천강", "namcheongang", "namchongang"),
        ("단천", "dancheon", "tanchon"),
        ("련봉", "ryeonbong", "ryonbong"),
        ("혁신", "hyeoksin", "hyoksin"),
        ("광업", "gwangeop", "kwangop"),
        ("청송연합", "cheongsongyeonhap", "chongsongyonhap"),
    ],
)
def test_hangul_romanization(hangul: str, revised: str, mccune: str) -> None:
    assert hangul_romanized(hangul, "revised") == revised
    assert hangul_romanized(hangul, "mccune-reischauer") == mccune


def test_katakana_loanword_reading(normalizer: Normalizer) -> None:
    assert readings(normalizer, "パキスタン") == ["pakisutan", "pakistan"]


# -- scores, statuses and explanations -------------------------------------------------------------


def test_exact_name_is_a_match_with_its_entry(screener: Screener) -> None:
    result = screener.screen("Shahid Hemmat Industrial Group")
    assert result.status is MatchStatus.MATCH
    best = result.best
    assert best is not None and best.entry.number == "14" and best.score == 100.0
    assert best.entry.concerns == frozenset({Concern.WMD})
    assert best.list.sample


def test_explanation_names_the_alias_and_the_words(screener: Screener) -> None:
    best = screener.screen("Shahid Hemat Industries Group Co., Ltd.").best
    assert best is not None and best.entry.number == "14"
    assert best.field == "also known as" and best.matched == "Shahid Hemmat Industries Group"
    assert "hemat≈hemmat" in best.explanation
    assert "legal forms ignored: co, ltd" in best.explanation


def test_word_order_and_spacing_are_named(screener: Screener) -> None:
    order = screener.screen("Commercial Bank Tanchon").best
    spacing = screener.screen("Nam Chon Gang Corporation").best
    assert order is not None and "another order" in order.explanation
    assert spacing is not None and spacing.entry.number == "4"


def test_hangul_query_matches_the_romanized_list_name(screener: Screener) -> None:
    best = screener.screen("단천상업은행").best
    assert best is not None and best.entry.number == "3" and best.status is MatchStatus.MATCH
    assert "mccune-reischauer" in best.explanation


def test_japanese_query_matches_the_japanese_name(screener: Screener) -> None:
    best = screener.screen("中国工程物理研究院").best
    assert best is not None and best.entry.number == "34"
    assert best.field == "Japanese name"
    assert "original script" in best.explanation


@pytest.mark.parametrize(
    "name",
    ["Taichung Commercial Bank", "Atomic Energy Organization of India", "Samsung Electronics"],
)
def test_near_misses_do_not_match(screener: Screener, name: str) -> None:
    assert screener.screen(name).status is not MatchStatus.MATCH


def test_a_short_acronym_alone_is_only_a_possible_match(screener: Screener) -> None:
    result = screener.screen("AIO")
    assert result.status is MatchStatus.REVIEW
    assert result.best is not None and "short acronym" in result.best.explanation


def test_the_review_band(normalizer: Normalizer) -> None:
    lists = load_sample_lists()
    strict = Screener(lists, normalizer, ScreeningConfig(threshold=99.0, review_from=70.0))
    result = strict.screen("Shahid Hemmet Industrial Group")
    assert result.status is MatchStatus.REVIEW
    with pytest.raises(ValueError, match="review_from"):
        ScreeningConfig(threshold=60.0, review_from=70.0)


def test_batch_and_single_agree(screener: Screener) -> None:
    names = ["Tanchon Comercial Bank", "Toshiba Corporation", "남천강무역회사", "SHIG"]
    single = [screener.screen(n) for n in names]
    batch = screener.screen_many(names)
    assert [r.status for r in single] == [r.status for r in batch]
    assert [r.best and r.best.entry.number for r in single] == [
        r.best and r.best.entry.number for r in batch
    ]


# -- list formats ---------------------------------------------------------------------------


def test_meti_columns_are_read() -> None:
    sample = load_sample_lists()[0]
    assert sample.format is ListFormat.METI_EUL and sample.sample
    komid = sample.entries[0]
    assert komid.name == "Korea Mining Development Trading Corporation"
    assert komid.japanese == "朝鮮鉱業開発貿易会社"
    assert komid.aliases[0] == "KOMID"  # aliases split on '・'
    assert komid.types == ("missile",)
    caep = next(e for e in sample.entries if e.number == "34")
    assert caep.provenance.verified  # the one entry with a cited source
    assert not komid.provenance.verified


def test_meti_japanese_headers_and_acronyms_in_parentheses() -> None:
    text = (
        "番号,国名・地域名,企業名・組織名,別名,懸念区分\n"
        "1,イラン,Example Works (EXW),Ex Works・EW,核\n"
    )
    lst = parse_list(text, "t", "t.csv", Provenance("test"))
    entry = lst.entries[0]
    assert entry.name == "Example Works" and entry.aliases == ("EXW", "Ex Works", "EW")
    assert entry.concerns == frozenset({Concern.WMD})


def test_csl_columns_are_read_and_screened(normalizer: Normalizer) -> None:
    csl = load_list(FIXTURES / "csl-sample.csv")
    assert csl.format is ListFormat.US_CSL and len(csl.entries) == 3
    result = Screener([csl], normalizer).screen("Semiconductor Manufacturing Intl Corp")
    assert result.best is not None and result.best.entry.name.startswith("Semiconductor")
    assert result.best.entry.concerns == frozenset()  # not a METI concern type


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("a,b,c\n1,2,3\n", "neither METI"),
        ("No.,Company or Organization\n1,Acme,extra\n", "row 2: 3 fields"),
        ("No.,Company or Organization\n1,\n", "row 2: no company"),
        ("No.,Company or Organization\n", "no entries"),
        ("name,alt_names\n,x\n", "row 2: no name"),
    ],
)
def test_malformed_lists(text: str, message: str) -> None:
    with pytest.raises(MalformedScreeningFileError, match=message):
        parse_list(text, "t", "t.csv", Provenance("test"))


def test_a_list_file_that_is_not_utf8(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes("No.,Company or Organization\n1,株式会社\n".encode("shift_jis"))
    with pytest.raises(MalformedScreeningFileError, match="not UTF-8"):
        load_list(bad)
    with pytest.raises(MalformedScreeningFileError, match="no such file"):
        load_list(tmp_path / "missing.csv")


# -- the labelled set -----------------------------------------------------------------------


def test_precision_and_recall_on_the_labelled_set(screener: Screener) -> None:
    labels = read_labelled((FIXTURES / "screening-eval.csv").read_text(encoding="utf-8"))
    assert len(labels) >= 250 and sum(1 for lb in labels if not lb.expected) >= 80
    predicted, reviewed = screener_predictions(screener, labels)
    s = score(labels, predicted, reviewed)
    REPORT["export screening, labelled set"] = (
        f"precision {s.precision:.3f}, recall {s.recall:.3f} "
        f"({s.total} names: {s.positives} true variants, {s.total - s.positives} non-matches; "
        f"{s.reviewed} left for review)"
    )
    detail = "\n".join(
        f"{q!r} ({k}): expected {w or '-'} got {g or '-'}" for q, k, w, g in s.errors
    )
    assert s.precision >= TARGET, detail
    assert s.recall >= TARGET, detail


def test_the_scorer_fails_when_it_should() -> None:
    labels = read_labelled("query,expected,kind\na,1,exact\nb,,near-miss\nc,2,typo\n")
    s = score(labels, ["1", "3", ""])
    assert (s.tp, s.fp, s.fn) == (1, 1, 1)
    assert s.precision == 0.5 and s.recall == 0.5

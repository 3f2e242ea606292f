"""The export-control data files: what they hold, how a bad file is refused, and that the pure
modules stay pure."""

from __future__ import annotations

import ast
import shutil
from datetime import date
from pathlib import Path

import pytest

from gsomia.core.errors import RegistryError
from gsomia.core.provenance import Evidence
from gsomia.exportcontrol import determination
from gsomia.exportcontrol import tables as tables_module
from gsomia.exportcontrol.countries import Countries
from gsomia.exportcontrol.loader import DATA_DIR, load_countries, load_tables
from gsomia.exportcontrol.tables import Control, Interval, Tables

GROUP_A_2019 = {
    "ARG",
    "AUS",
    "AUT",
    "BEL",
    "BGR",
    "CAN",
    "CZE",
    "DNK",
    "FIN",
    "FRA",
    "DEU",
    "GRC",
    "HUN",
    "IRL",
    "ITA",
    "LUX",
    "NLD",
    "NZL",
    "NOR",
    "POL",
    "PRT",
    "ESP",
    "SWE",
    "CHE",
    "GBR",
    "USA",
}


def test_appended_table_1_has_rows_1_to_16(tables: Tables) -> None:
    expected = [str(n) for n in range(1, 16)]
    expected.insert(3, "3-2")
    listed = [r.id for r in tables.rows.values() if r.control is Control.LIST]
    assert listed == expected
    catch_all = [r.id for r in tables.rows.values() if r.control is Control.CATCH_ALL]
    assert catch_all == ["16(1)", "16(2)"]
    assert tables.rows["3-2"].japanese == "生物兵器"


def test_group_a_is_26_then_27(tables: Tables) -> None:
    table3 = tables.lists["appended-table-3"]
    assert table3.countries_on(date(2019, 8, 28)) == frozenset(GROUP_A_2019)
    assert table3.countries_on(date(2023, 7, 21)) == frozenset(GROUP_A_2019 | {"KOR"})
    assert len(table3.countries_on(date(2019, 8, 27))) == 27


def test_group_d_and_its_unverified_part(tables: Tables) -> None:
    day = date(2024, 1, 1)
    assert tables.group_on("PRK", day).group.id == "D"
    assert tables.group_on("AFG", day).provenance.verified  # Appended Table 3-2: sourced
    iran = tables.group_on("IRN", day)  # Appended Table 4: membership unconfirmed
    assert iran.group.id == "D" and iran.provenance.evidence is Evidence.UNVERIFIED
    assert tables.group_on("CHN", day).group.id == "C"
    assert tables.group_on("RUS", day).provenance.evidence is Evidence.UNVERIFIED


def test_every_fact_has_a_source(tables: Tables) -> None:
    provenances = [
        *(r.provenance for r in tables.rows.values()),
        *(i.provenance for i in tables.items.values()),
        *(lic.provenance for lic in tables.licences.values()),
        *(m.provenance for lst in tables.lists.values() for m in lst.members),
        *(m.provenance for m in tables.measures),
        *(r.provenance for r in tables.rules),
        *(c.provenance for c in tables.chart.values()),
    ]
    assert provenances and all(p.source.strip() for p in provenances)
    assert any(not p.verified for p in provenances)  # and the doubtful ones say so


def test_the_2019_measure_interval(tables: Tables) -> None:
    measure = next(m for m in tables.measures if m.id == "kor-three-items-2019")
    assert measure.interval == Interval(date(2019, 7, 4), date(2023, 3, 23))
    assert measure.interval.describe() == "2019-07-04 to 2023-03-22"
    assert not measure.interval.contains(date(2023, 3, 23))


def test_intervals_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="ends"):
        Interval(date(2020, 1, 2), date(2020, 1, 1))


def test_the_content_hash_is_stable_and_changes_with_the_data(tmp_path: Path) -> None:
    first, second = load_tables(), load_tables()
    assert first.content_hash == second.content_hash
    data = copy_data(tmp_path)
    edit(data / "measures.toml", "to = 2023-03-23", "to = 2023-03-24")
    assert load_tables(data).content_hash != first.content_hash


def copy_data(tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(DATA_DIR, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


NONE_ROW = 'regime = "none"\ncontrol = "none"'
TEA_SOURCE = 'source = "https://q.paccloa.co.jp/tips/154"\n\n[[items]]'


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        ("items.toml", 'row = "7"', 'row = "77"', "items.toml: items.resist.row: unknown row '77'"),
        ("measures.toml", "to = 2023-03-23", "to = 2019-01-01", "kor-three-items-2019: interval"),
        ("measures.toml", 'licences = ["individual"]', 'licences = ["gold"]', "unknown licence"),
        ("countries.toml", '"ARG", "AUS"', '"ARG", "XYZ"', "'XYZ' is not an ISO 3166 alpha-3 code"),
        ("catch-all.toml", 'rows = ["16(1)"]', 'rows = ["5"]', "'5' is not a catch-all row"),
        ("licences.toml", 'group = "D"', 'group = "E"', "no row for group D"),
        ("appended-table-1.toml", NONE_ROW, NONE_ROW.replace("none", "maybe"), "rows.18.control"),
        (
            "items.toml",
            TEA_SOURCE,
            'source = ""\n\n[[items]]',
            "source: String should have at least",
        ),
        ("catch-all.toml", "[[rules]]", "[[rules]\n", "not valid TOML"),
    ],
)
def test_a_bad_data_file_names_the_file_and_field(
    tmp_path: Path, file: str, old: str, new: str, message: str
) -> None:
    data = copy_data(tmp_path)
    edit(data / file, old, new)
    with pytest.raises(RegistryError) as info:
        load_tables(data)
    assert file in str(info.value) and message in str(info.value)


def test_countries_by_code_and_name() -> None:
    countries = load_countries()
    assert isinstance(countries, Countries)
    for name in ("kor", "KOR", "South Korea", "Republic of Korea", "韓国", "Korea, Republic of"):
        assert countries.resolve(name).code == "KOR"
    assert countries.resolve("Türkiye").code == "TUR"
    assert countries.resolve("United Kingdom").code == "GBR"


# -- purity: the determination and its tables import no I/O, no clock, nothing outside the core --

PURE = (determination, tables_module)
ALLOWED = {"__future__", "collections", "dataclasses", "datetime", "enum", "typing"}
ALLOWED_OURS = {
    "gsomia.core.provenance",
    "gsomia.exportcontrol.tables",
    "gsomia.exportcontrol.errors",
}


@pytest.mark.parametrize("module", PURE, ids=lambda m: m.__name__)
def test_pure_modules_import_only_the_core(module: object) -> None:
    source = Path(module.__file__).read_text(encoding="utf-8")  # type: ignore[attr-defined]
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            assert top in ALLOWED or name in ALLOWED_OURS, f"{module} imports {name}"
    assert "now(" not in source and "open(" not in source

"""The link journal's contract, on SQLite and PostgreSQL: positions, order, cursors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import IntegrityError

from gsomia.core.errors import StorageError
from gsomia.store.engine import Store
from gsomia.store.link import JournalEntry, LinkJournal

AT = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)


def entry(pos: int, track: str, seq: int, **extra: object) -> JournalEntry:
    fields: dict[str, object] = {
        "pos": pos,
        "track_id": track,
        "seq": seq,
        "originator": "KOR",
        "sender": "KOR",
        "instrument": "TRILATERAL-MISSILE-WARNING-2023",
        "phase": "boost",
        "label": {"originator": "KOR", "policy": "KOR", "classification": "gunsa-2"},
        "level_rank": 2,
        "topics": frozenset({"dprk-missile"}),
        "compartments": frozenset(),
        "body": {"track_id": track, "seq": seq},
        "sensor": None,
        "hops": [{"p": "KOR", "in": 1}],
        "forward": {"USA": ["USA", "JPN"]},
        "consents": frozenset({"KOR"}),
        "received_at": AT,
    }
    fields.update(extra)
    return JournalEntry(**fields)  # type: ignore[arg-type]


def test_entries_come_back_in_position_order_with_everything_they_held(store: Store) -> None:
    with store.write() as s:
        LinkJournal(s).append([entry(1, "T1", 0), entry(2, "T2", 0), entry(3, "T1", 1)])
        LinkJournal(s).append([entry(4, "T1", 2, sensor={"sensor_type": "x"})])
    with store.read() as s:
        j = LinkJournal(s)
        assert j.last_pos() == 4
        assert j.next_seqs() == {"T1": 3, "T2": 1}
        after = j.after(1)
        assert [(e.pos, e.track_id, e.seq) for e in after] == [
            (2, "T2", 0),
            (3, "T1", 1),
            (4, "T1", 2),
        ]
        assert after[-1].sensor == {"sensor_type": "x"}
        assert after[0].forward == {"USA": ["USA", "JPN"]} and after[0].consents == {"KOR"}
        assert after[0].received_at == AT
        assert [e.seq for e in j.track("T1")] == [0, 1, 2]


def test_a_track_update_is_journaled_once(store: Store) -> None:
    with store.write() as s:
        LinkJournal(s).append([entry(1, "T1", 0)])
    with pytest.raises((IntegrityError, StorageError)), store.write() as s:
        LinkJournal(s).append([entry(2, "T1", 0)])
    with store.read() as s:
        assert LinkJournal(s).last_pos() == 1  # nothing of the refused batch was kept


def test_cursors_only_move_forward(store: Store) -> None:
    with store.write() as s:
        LinkJournal(s).set_cursors([("USA", 5), ("JPN", 2)])
    with store.write() as s:
        LinkJournal(s).set_cursors([("USA", 3), ("JPN", 7)])
    with store.read() as s:
        assert LinkJournal(s).cursors() == {"USA": 5, "JPN": 7}

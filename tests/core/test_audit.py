"""store/audit.py: the audit log's hash chain, verified record by record."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from callshield.store.audit import (
    GENESIS,
    AuditRecord,
    ChainReport,
    ChainWalker,
    chain_key,
    encode_detail,
    format_at,
    record_hash,
    verify_chain,
)

KEY = bytes(range(32))
CKEY = chain_key(KEY)
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

Chain = list[AuditRecord]


def make_record(ckey: bytes, prev: bytes, seq: int, actor: str = "admin") -> AuditRecord:
    at = format_at(T0 + timedelta(seconds=seq))
    action = "shield.add" if seq % 2 else "shield.remove"
    masked = "+86138****8000"
    detail = encode_detail({"scope": "global", "count": seq})
    digest = record_hash(ckey, prev, seq, at, actor, action, masked, detail)
    return AuditRecord(seq, at, actor, action, masked, detail, prev, digest)


def build_chain(n: int = 5, ckey: bytes = CKEY) -> Chain:
    chain: Chain = []
    prev = GENESIS
    for seq in range(1, n + 1):
        chain.append(make_record(ckey, prev, seq))
        prev = chain[-1].hash
    return chain


def walk(ckey: bytes, records: Chain) -> ChainReport:
    walker = ChainWalker(ckey)
    for rec in records:
        if not walker.step(rec):
            break
    return walker.report()


def test_chain_key_is_derived_and_key_dependent() -> None:
    assert len(CKEY) == 32
    assert CKEY != KEY
    assert chain_key(KEY) == CKEY
    assert chain_key(bytes(32)) != CKEY


def test_intact_chain_verifies() -> None:
    chain = build_chain()
    report = verify_chain(CKEY, chain)
    assert report == ChainReport(True, 5, 5, chain[-1].hash.hex())
    assert walk(CKEY, chain) == report


def test_empty_chain_verifies() -> None:
    assert verify_chain(CKEY, []) == ChainReport(True, 0, 0, GENESIS.hex())


def test_walker_reports_progress() -> None:
    chain = build_chain()
    walker = ChainWalker(CKEY)
    assert all(walker.step(rec) for rec in chain[:3])
    assert walker.report() == ChainReport(True, 3, 3, chain[2].hash.hex())


def test_truncating_the_newest_records_is_not_visible_but_moves_the_head() -> None:
    chain = build_chain()
    report = verify_chain(CKEY, chain[:-1])
    assert (report.ok, report.head_seq, report.head_hash) == (True, 4, chain[3].hash.hex())


def _edit(index: int, **changes: object) -> Callable[[Chain], Chain]:
    def mutate(chain: Chain) -> Chain:
        chain[index] = dataclasses.replace(chain[index], **changes)  # type: ignore[arg-type]
        return chain

    return mutate


def _delete(index: int) -> Callable[[Chain], Chain]:
    return lambda chain: chain[:index] + chain[index + 1 :]


def _swap(i: int, j: int) -> Callable[[Chain], Chain]:
    def mutate(chain: Chain) -> Chain:
        chain[i], chain[j] = chain[j], chain[i]
        return chain

    return mutate


def _insert_duplicate(chain: Chain) -> Chain:
    """Record 2 replayed after itself."""
    return [*chain[:2], chain[1], *chain[2:]]


def _insert_forged_renumbered(chain: Chain) -> Chain:
    """A record 3 forged without the key, the later records renumbered to make room."""
    forged = make_record(chain_key(b"not the key"), chain[1].hash, 3, actor="intruder")
    later = [dataclasses.replace(rec, seq=rec.seq + 1) for rec in chain[2:]]
    return [*chain[:2], forged, *later]


def _insert_forged_at_end(chain: Chain) -> Chain:
    return [*chain, make_record(chain_key(b"not the key"), chain[-1].hash, 6)]


TAMPER = [
    (_edit(2, actor="mallory"), "record 3 was edited", 2, "edit-actor"),
    (
        _edit(0, detail=encode_detail({"scope": "global", "count": 99})),
        "record 1 was edited",
        0,
        "edit-first",
    ),
    (_edit(4, masked="+86139****8000"), "record 5 was edited", 4, "edit-last"),
    (_edit(1, at=format_at(T0)), "record 2 was edited", 1, "edit-time"),
    (_edit(3, action="shield.add"), "record 4 was edited", 3, "edit-action"),
    (_edit(1, hash=bytes(32)), "record 2 was edited", 1, "edit-hash"),
    (_edit(3, prev_hash=bytes(32)), "record 4 does not follow record 3", 3, "change-prev-hash"),
    (_edit(0, prev_hash=b"\x01" * 32), "record 1 does not follow", 0, "first-not-from-genesis"),
    (_delete(2), "record 3 is missing (deleted)", 2, "delete-middle"),
    (_delete(0), "record 1 is missing (deleted)", 0, "delete-first"),
    (_insert_duplicate, "record 3 is out of order (inserted): found record 2", 2, "insert-replayed"),
    (_insert_forged_renumbered, "record 3 was edited", 2, "insert-forged-renumbered"),
    (_insert_forged_at_end, "record 6 was edited", 5, "append-forged"),
    (_swap(2, 3), "record 3 is", 2, "reorder"),
    (_swap(0, 4), "record 1 is", 0, "reorder-first-last"),
]


@pytest.mark.parametrize(
    ("mutate", "problem", "checked"), [c[:3] for c in TAMPER], ids=[c[3] for c in TAMPER]
)
def test_tampering_is_found_at_the_right_record(
    mutate: Callable[[Chain], Chain], problem: str, checked: int
) -> None:
    records = mutate(build_chain())
    report = verify_chain(CKEY, records)
    assert not report.ok
    assert problem in report.problem
    assert report.checked == checked
    assert walk(CKEY, records) == report


def test_another_key_breaks_the_first_record() -> None:
    chain = build_chain()
    report = verify_chain(chain_key(b"\x00" * 32), chain)
    assert (report.ok, report.checked) == (False, 0)
    assert "record 1 was edited" in report.problem


def test_chain_rebuilt_with_another_key_does_not_verify() -> None:
    report = verify_chain(CKEY, build_chain(ckey=chain_key(b"other")))
    assert not report.ok
    assert "record 1 was edited" in report.problem


def test_record_hash_binds_every_field() -> None:
    base = ("2026-01-01T12:00:00.000000+00:00", "admin", "shield.add", "+86138****8000", "{}")
    digest = record_hash(CKEY, GENESIS, 1, *base)
    assert len(digest) == 32
    assert record_hash(CKEY, GENESIS, 1, *base) == digest
    assert record_hash(CKEY, b"\x01" * 32, 1, *base) != digest
    assert record_hash(CKEY, GENESIS, 2, *base) != digest
    for i in range(len(base)):
        changed = list(base)
        changed[i] += "x"
        assert record_hash(CKEY, GENESIS, 1, *changed) != digest
    # Field boundaries are unambiguous: moving a character from one field to the next changes the hash.
    assert record_hash(CKEY, GENESIS, 1, "a", "bc", "", "", "") != record_hash(
        CKEY, GENESIS, 1, "ab", "c", "", "", ""
    )


def test_encode_detail_is_canonical() -> None:
    assert (
        encode_detail({"b": 1, "a": "é", "c": T0}) == '{"a":"\\u00e9","b":1,"c":"2026-01-01 12:00:00+00:00"}'
    )


def test_format_at() -> None:
    assert format_at(T0) == "2026-01-01T12:00:00.000000+00:00"


@pytest.mark.parametrize(
    ("detail", "expected"),
    [('{"count":2}', {"count": 2}), ("[1,2]", {}), ('"text"', {})],
    ids=["object", "list", "string"],
)
def test_record_details(detail: str, expected: dict[str, object]) -> None:
    rec = AuditRecord(1, "", "", "", "", detail, GENESIS, GENESIS)
    assert rec.details() == expected

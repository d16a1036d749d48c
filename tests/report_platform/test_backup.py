"""`manage.py export_data` / `restore_data`: a round trip on the embedded server keeps every document, type and index;
restore refuses a non-empty database and a damaged file without writing anything."""

from __future__ import annotations

import gzip
import json
import stat
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from bson import Binary, Decimal128, Int64, ObjectId
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from audit.services import audit_record
from report_platform.backup import exported_collection_names


def snapshot(database) -> dict:
    """Every exported collection's documents (by _id) and index definitions."""
    state = {}
    for name in exported_collection_names(database):
        indexes = sorted(
            (index["name"], tuple(index["key"].items()), index.get("unique", False), index.get("expireAfterSeconds"))
            for index in database[name].list_indexes()
        )
        state[name] = {"documents": list(database[name].find({}, sort=[("_id", 1)])), "indexes": indexes}
    return state


@pytest.fixture
def scratch_database():
    """A second, empty database on the same server (the restore target), dropped afterwards."""
    client = connection.database.client
    name = f"{connection.database.name}_restore"
    client.drop_database(name)
    yield client[name]
    client.drop_database(name)


@pytest.fixture
def populated(make_user):
    database = connection.database
    admin = make_user("admin")
    viewer = make_user("viewer")
    for index in range(3):
        audit_record(action="case.update", actor=admin, resource=f"case:{index}", metadata={"n": index})
    probe = database["backupProbe"]
    probe.create_index([("ref", 1)], unique=True, name="probe_ref_unique")
    probe.create_index([("expires", 1)], expireAfterSeconds=3600, name="probe_ttl")
    probe.insert_many(
        [
            {
                "ref": ObjectId(),
                "when": datetime(2026, 11, 25, 12, 30, 15, 123000, tzinfo=UTC),
                "expires": datetime(2099, 1, 1, tzinfo=UTC),
                "big": Int64(2**40),
                "small": 7,
                "price": Decimal128(Decimal("1.10")),
                "blob": Binary(b"\x00\x01\xff"),
                "text": "Grüße \u202e =1+1 \u200b",
                "nested": {"list": [1, 2.5, None, True, {"deep": ObjectId()}]},
            },
            {"ref": ObjectId(), "when": None, "expires": None},
        ]
    )
    database["django_session"].insert_one({"session_key": "live-session-secret", "session_data": "x"})
    return {"admin": admin, "viewer": viewer}


@pytest.mark.django_db
def test_export_then_restore_into_an_empty_database_gives_back_the_same_documents(
    populated, scratch_database, tmp_path, capsys
):
    source = connection.database
    path = tmp_path / "backup.jsonl"
    call_command("export_data", str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "live-session-secret" not in text  # sessions are not exported
    assert populated["admin"].password in text  # password hashes are (a restored user must be able to log in)

    call_command("restore_data", str(path), "--database", scratch_database.name)
    assert "Restored" in capsys.readouterr().out
    before, after = snapshot(source), snapshot(scratch_database)
    assert "django_session" not in after
    assert set(after) == set(before)
    assert after == before
    restored = scratch_database["backupProbe"].find_one({"big": {"$exists": True}})
    assert isinstance(restored["big"], Int64) and isinstance(restored["small"], int)
    assert restored["when"] == datetime(2026, 11, 25, 12, 30, 15, 123000)  # millisecond precision kept
    assert restored["price"] == Decimal128(Decimal("1.10"))
    users = {user["email"]: user for user in scratch_database["users"].find()}
    assert users[populated["viewer"].email]["_id"] == populated["viewer"].pk


@pytest.mark.django_db
def test_the_restored_audit_trail_still_verifies(populated, scratch_database, tmp_path):
    from audit.selectors import audit_chain_verify

    path = tmp_path / "backup.jsonl.gz"
    call_command("export_data", str(path))
    with gzip.open(path, "rt") as compressed:
        assert json.loads(compressed.readline())["format"] == "report-platform-export"
    call_command("restore_data", str(path), "--database", scratch_database.name)
    # Point the ORM at the restored copy for a moment: the chain verifies there too.
    from django.db import connections

    wrapper = connections["default"]  # the connection object itself, which the ORM uses (not the proxy)
    original = wrapper.database
    wrapper.__dict__["database"] = scratch_database
    try:
        report = audit_chain_verify()
    finally:
        wrapper.__dict__["database"] = original
    assert report.ok and report.checked == 3


@pytest.mark.django_db
def test_restore_refuses_a_database_that_holds_any_document(populated, tmp_path):
    path = tmp_path / "backup.jsonl"
    call_command("export_data", str(path))
    before = snapshot(connection.database)
    with pytest.raises(CommandError, match="is not empty"):
        call_command("restore_data", str(path))
    assert snapshot(connection.database) == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda lines: lines[:-1], "truncated"),
        (lambda lines: lines[:-3] + lines[-2:], "documents missing|do not match"),
        (lambda lines: ["{not json", *lines[1:]], "not valid Extended JSON|header"),
        (lambda lines: lines[1:], "header line is missing"),
        (lambda lines: [], "empty"),
    ],
)
def test_restore_checks_the_whole_file_before_writing_anything(populated, scratch_database, tmp_path, damage, message):
    path = tmp_path / "backup.jsonl"
    call_command("export_data", str(path))
    lines = path.read_text().splitlines()
    path.write_text("\n".join(damage(lines)) + "\n")
    with pytest.raises(CommandError, match=message):
        call_command("restore_data", str(path), "--database", scratch_database.name)
    assert scratch_database.list_collection_names() == []


@pytest.mark.django_db
def test_commands_report_bad_paths_as_command_errors(tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        call_command("restore_data", str(tmp_path / "missing.jsonl"))
    with pytest.raises(CommandError, match="does not exist"):
        call_command("export_data", str(tmp_path / "no-such-folder" / "x.jsonl"))

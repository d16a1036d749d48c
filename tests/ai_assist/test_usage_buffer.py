"""The gateway's write path off the call: post-call bookkeeping on a thread, usage rows through a Redis list that is
drained to MongoDB exactly once, quota counters in Redis re-seeded from the logs, and the fallbacks when Redis fails.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
import redis
from bson import ObjectId
from django.db import connection

from ai_assist import post_call, quotas, redis_store, usage_buffer
from ai_assist.models import AiUsageLog
from ai_assist.quotas import AiQuotaExceeded, quota_usage
from ai_assist.services import AiUnavailable, ai_generate_text

pytestmark = pytest.mark.django_db

FIGURES = {"release_candidate": "RC-9", "total": 10, "passed": 9, "failed": 1, "pass_rate": 90.0}


def _call(user):
    return ai_generate_text(user=user, task_id="report_summary", template_id="report_summary", variables=FIGURES)


def _stored() -> int:
    """Rows really in MongoDB (a raw count: the model manager would drain the list first)."""
    return connection.database["aiUsageLogs"].count_documents({})


def _row(**overrides) -> dict:
    return {"_id": ObjectId(), "task_id": "bench", "outcome": "success", "created_at": datetime.now(tz=UTC)} | overrides


def _queue(documents: list[dict]) -> None:
    batch = redis_store.Batch()
    for document in documents:
        usage_buffer.push(batch, document)
    batch.execute()


def test_a_call_queues_its_row_in_redis_and_any_reader_sees_it(viewer, fake_openai):
    result = _call(viewer)
    post_call.wait()
    assert usage_buffer.pending() == 1 and _stored() == 0  # not written to MongoDB on the call path
    log = AiUsageLog.objects.get(pk=result.usage_log_id)  # the manager drains before reading
    assert (log.outcome, log.total_tokens, log.user_id) == (
        "success",
        result.prompt_tokens + result.completion_tokens,
        viewer.pk,
    )
    assert usage_buffer.pending() == 0 and _stored() == 1


def test_the_post_call_round_trip_does_not_hold_up_the_caller(viewer, fake_openai, monkeypatch):
    release = threading.Event()
    sent: list[bool] = []
    original = redis_store.Batch.execute

    def held(self):
        release.wait(timeout=10)
        sent.append(release.is_set())
        return original(self)

    monkeypatch.setattr(redis_store.Batch, "execute", held)
    result = _call(viewer)  # would block for 10 s (and send with release unset) if the round trip were inline
    assert result.outcome == "success" and sent == []
    release.set()
    assert post_call.wait(timeout=10)
    assert sent == [True]
    assert AiUsageLog.objects.filter(pk=result.usage_log_id).exists()
    assert (
        quota_usage(user_id=str(viewer.pk), role="viewer")["tokens_used"]
        == result.prompt_tokens + result.completion_tokens
    )


def test_a_batch_reinserted_after_its_drainer_died_is_stored_once(db):
    documents = [_row() for _ in range(5)]
    _queue(documents)
    # A drainer inserted the batch and died before trimming the list: the rows are in MongoDB and still queued.
    connection.database["aiUsageLogs"].insert_many([dict(document) for document in documents[:3]])
    assert usage_buffer.flush() == 5
    assert _stored() == 5 and usage_buffer.pending() == 0


def test_the_direct_fallback_never_stores_a_row_twice(db):
    document = _row()
    _queue([document])
    assert usage_buffer.flush() == 1  # Redis took the row after all and a drain stored it
    usage_buffer.insert_direct(dict(document))  # the caller, told Redis failed, writes it directly too
    usage_buffer.insert_direct(_row(task_id="second"))
    assert _stored() == 2
    stored = connection.database["aiUsageLogs"].find_one({"_id": document["_id"]})
    assert stored["task_id"] == "bench" and stored["created_at"] is not None


def test_concurrent_drainers_move_every_row_exactly_once(db):
    total = 1200
    _queue([_row(task_id=f"t{index}") for index in range(total)])
    moved: list[int] = []

    def drain():
        moved.append(usage_buffer.flush(wait_seconds=10))
        connection.close()

    threads = [threading.Thread(target=drain) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(moved) == total
    assert _stored() == total and len(connection.database["aiUsageLogs"].distinct("task_id")) == total


def test_a_drainer_that_lost_its_lock_trims_nothing(db):
    _queue([_row(), _row()])
    client = redis_store.client()
    client.set(redis_store.key(usage_buffer.LOCK), "someone-else", px=10_000)
    lock, buffer = redis_store.key(usage_buffer.LOCK), redis_store.key(usage_buffer.BUFFER)
    assert client.eval(usage_buffer._TRIM, 2, lock, buffer, "my-expired-token", 2, 1000) == 0
    assert usage_buffer.pending() == 2
    assert usage_buffer.flush(wait_seconds=0.05) == 0  # another drainer holds the lock: it moves the rows
    client.delete(lock)
    assert usage_buffer.flush() == 2 and _stored() == 2


def test_an_undecodable_entry_is_set_aside_not_dropped(db):
    good = _row()
    client = redis_store.client()
    client.rpush(redis_store.key(usage_buffer.BUFFER), "not base64 bson!")
    _queue([good])
    assert usage_buffer.flush() == 2
    assert _stored() == 1 and connection.database["aiUsageLogs"].find_one({"_id": good["_id"]}) is not None
    assert client.lrange(redis_store.key(usage_buffer.DEAD), 0, -1) == ["not base64 bson!"]


def test_when_redis_fails_after_the_call_the_row_goes_straight_to_mongodb(viewer, fake_openai, monkeypatch):
    def broken(self):
        raise redis.ConnectionError("redis went away")

    monkeypatch.setattr(redis_store.Batch, "execute", broken)
    result = _call(viewer)
    post_call.wait()
    assert _stored() == 1 and usage_buffer.pending() == 0
    assert connection.database["aiUsageLogs"].find_one({"_id": ObjectId(result.usage_log_id)})["outcome"] == "success"


def test_when_redis_is_down_before_the_call_the_call_is_refused_and_logged(viewer, fake_openai, monkeypatch):
    dead = redis.Redis(host="127.0.0.1", port=9, socket_connect_timeout=0.2, decode_responses=True, protocol=2)
    monkeypatch.setattr(redis_store, "client", lambda: dead)
    with pytest.raises(AiUnavailable) as refused:
        _call(viewer)
    post_call.wait()
    assert "limits cannot be checked" in refused.value.message
    assert fake_openai.request_count == 0
    row = connection.database["aiUsageLogs"].find_one({"user_id": viewer.pk})
    assert (row["outcome"], row["error_code"]) == ("refused", "ai_unavailable")


def test_quota_counters_lost_by_redis_are_seeded_again_from_the_logs(viewer, fake_openai, settings):
    base = {"daily_tokens": 100_000, "cost_ceiling_usd": 10.0, "cost_period": "day", "burst_per_minute": 100}
    settings.AI_QUOTAS = {"viewer": base, "reviewer": base, "admin": base}
    first = _call(viewer)
    used = first.prompt_tokens + first.completion_tokens
    reserved = AiUsageLog.objects.get(pk=first.usage_log_id).reserved_tokens
    settings.AI_QUOTAS = {**settings.AI_QUOTAS, "viewer": {**base, "daily_tokens": used + reserved - 1}}
    client = redis_store.client()
    client.delete(*client.keys(redis_store.key(f"quota:{viewer.pk}:*")))  # Redis restarted without its data
    with pytest.raises(AiQuotaExceeded) as refused:
        _call(viewer)
    assert refused.value.extra["limit"] == "daily_tokens" and refused.value.extra["used"] == used
    assert fake_openai.request_count == 1
    assert quota_usage(user_id=str(viewer.pk), role="viewer")["tokens_used"] == used


def test_scripts_redis_forgot_are_loaded_again(viewer, fake_openai):
    _call(viewer)
    post_call.wait()
    redis_store.client().script_flush()  # a restarted Redis knows no scripts: EVALSHA answers NOSCRIPT
    second = _call(viewer)
    post_call.wait()
    usage = quota_usage(user_id=str(viewer.pk), role="viewer")
    assert usage["tokens_used"] == 2 * (second.prompt_tokens + second.completion_tokens)  # both settled
    assert AiUsageLog.objects.filter(user=viewer, outcome="success").count() == 2


def test_the_background_drain_moves_rows_without_any_reader(viewer, fake_openai, settings):
    settings.AI_USAGE_FLUSH_SECONDS = 0.05
    _call(viewer)
    deadline = time.monotonic() + 10
    while _stored() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _stored() == 1 and usage_buffer.pending() == 0
    settings.AI_USAGE_FLUSH_SECONDS = 0.0
    time.sleep(0.1)  # let a drain in progress end before the next test cleans the database


def test_beat_drains_rows_a_dead_process_left_behind(db, settings):
    from ai_assist.tasks import ai_usage_flush_task

    assert settings.CELERY_BEAT_SCHEDULE["ai-usage-flush"]["task"] == "ai_assist.usage_flush"
    _queue([_row(), _row(), _row()])
    assert ai_usage_flush_task() == 3
    assert _stored() == 3


def test_a_backup_includes_rows_still_queued(db, tmp_path):
    import gzip

    from django.core.management import call_command

    document = _row(task_id="queued-at-backup")
    _queue([document])
    call_command("export_data", str(tmp_path / "backup.jsonl.gz"))
    with gzip.open(tmp_path / "backup.jsonl.gz", "rt") as lines:
        assert any("queued-at-backup" in line for line in lines)


def test_an_admission_refused_for_quota_holds_nothing_back(viewer, fake_openai, settings):
    base = {"daily_tokens": 10, "cost_ceiling_usd": 10.0, "cost_period": "day", "burst_per_minute": 100}
    settings.AI_QUOTAS = {"viewer": base, "reviewer": base, "admin": base}
    with pytest.raises(AiQuotaExceeded):
        _call(viewer)
    usage = quotas.quota_usage(user_id=str(viewer.pk), role="viewer")
    assert usage["tokens_used"] == 0 and usage["cost_used_usd"] == 0

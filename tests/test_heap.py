"""The garbage collector in the shop's long-running processes (orders/heap.py): each web
worker and consumer freezes its start-up objects and collects young objects less
often, before it serves; ``GC_FREEZE=0`` leaves Python's collector as it is. Checked
in a fresh interpreter, as each process starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import run_python

REPORT = "print(gc.get_freeze_count() > 20_000, gc.get_threshold()[0])"
STARTS = {
    # a gunicorn worker's hook after it loaded the app (a bare Flask app: no pool to warm)
    "web": (
        "import gc, runpy, types; from flask import Flask; from app import create_app; "
        "create_app(); conf = runpy.run_path('gunicorn.conf.py'); "
        "conf['post_worker_init'](types.SimpleNamespace(wsgi=Flask('bare'))); " + REPORT
    ),
    # the consumer, up to the moment it would start consuming
    "consumer": (
        "import gc, orders.consumer as c; "
        f"c.PooledConsumer.run = lambda self: {REPORT}; "
        "c.main(['tasks.orders_queue', '--in-flight', '2', '-k', 'greenlet', '-w', '1', '-q'])"
    ),
}


@pytest.mark.parametrize("process", sorted(STARTS))
@pytest.mark.parametrize(("freeze", "expected"), [("1", "True 10000"), ("0", "False 700")])
def test_a_process_keeps_its_start_up_objects_out_of_the_collector(
    process: str, freeze: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SHOP_ENV", "development")
    monkeypatch.setenv("GC_FREEZE", freeze)
    assert run_python(STARTS[process]) == expected

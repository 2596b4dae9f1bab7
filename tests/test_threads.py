"""How many threads an invoke uses: all it was given on an idle machine, the free cores on a busy one."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from npdeeplab.runtime import threads


@pytest.fixture(autouse=True)
def look_every_time(monkeypatch):
    monkeypatch.setattr(threads, "LOOK_EVERY_S", 0.0)
    monkeypatch.setattr(threads, "_last_look", (float("-inf"), 0, 0))


def test_an_idle_machine_gets_every_thread_asked_for(monkeypatch):
    monkeypatch.setattr(threads, "busy_elsewhere", lambda: 0)
    monkeypatch.setattr(threads, "default_threads", lambda: 8)
    assert threads.adaptive_threads(8) == 8
    assert threads.adaptive_threads(3) == 3


def test_busy_cores_are_left_to_their_programs(monkeypatch):
    monkeypatch.setattr(threads, "default_threads", lambda: 2)
    monkeypatch.setattr(threads, "busy_elsewhere", lambda: 1)
    assert [threads.adaptive_threads(2) for _ in range(3)] == [2, 1, 1]  # seen twice in a row: load
    monkeypatch.setattr(threads, "busy_elsewhere", lambda: 5)
    assert threads.adaptive_threads(2) == 1  # never fewer than one
    monkeypatch.setenv(threads.ADAPTIVE_ENV, "0")
    assert threads.adaptive_threads(2) == 2


def test_a_momentary_blip_is_not_load(monkeypatch):
    """A task counted for a moment as it wakes (seen by one look in 16 right after an invoke on
    the 2-core VM) is not load: it must be there at two looks in a row."""
    looks = iter([1, 0, 1, 0, 2, 1])
    monkeypatch.setattr(threads, "busy_elsewhere", lambda: next(looks))
    monkeypatch.setattr(threads, "default_threads", lambda: 4)
    assert [threads.adaptive_threads(4) for _ in range(6)] == [4, 4, 4, 4, 4, 3]


@pytest.mark.skipif(not os.path.exists("/proc/loadavg"), reason="reads Linux's /proc")
def test_a_spinning_process_is_seen():
    spinner = subprocess.Popen([sys.executable, "-S", "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert max(threads.busy_elsewhere() for _ in range(5)) >= 1
    finally:
        spinner.kill()
        spinner.wait()


def test_the_run_queue_is_read_at_most_once_per_interval(monkeypatch):
    looks = []
    monkeypatch.setattr(threads, "LOOK_EVERY_S", 60.0)
    monkeypatch.setattr(threads, "_last_look", (-1e9, 0))
    monkeypatch.setattr(threads, "busy_elsewhere", lambda: looks.append(1) or 0)
    monkeypatch.setattr(threads, "default_threads", lambda: 2)
    for _ in range(5):
        assert threads.adaptive_threads(2) == 2
    assert len(looks) == 1

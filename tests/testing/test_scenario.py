"""The failover scenario runner against one ``kasagi serve``: a clean run, dropped
connections and a pause lose nothing; kill -9 and restart (no durability) loses ACKed
updates, and the report says so."""

from __future__ import annotations

import asyncio
from typing import Any

from kasagi.testing import (
    KasagiInstance,
    ScenarioReport,
    drop_connections,
    kill_restart,
    pause_resume,
    run_scenario,
)


def run(instance: KasagiInstance, fault: Any = None, **options: Any) -> ScenarioReport:
    options = {"clients": 8, "rate": 10.0, "before": 1.0, "after": 2.0, **options}
    return asyncio.run(run_scenario([instance.url], fault, **options))


def assert_consistent(report: ScenarioReport) -> None:
    assert report.converged, report.summary()
    assert (report.duplicates, report.version_gaps, report.versions_backwards) == (0, 0, 0)


def test_without_a_fault_nothing_is_lost_or_paused(kasagi_instances: Any) -> None:
    (instance,) = kasagi_instances("--tick-rate", "20")
    report = run(instance, rooms=2)
    assert_consistent(report)
    assert report.acked_lost == 0 and report.lost_samples == []
    assert report.updates_acked == report.updates_sent > 8 * 10
    assert report.updates_failed == 0 and report.errors == {}
    assert (report.resyncs, report.full_states, report.reconnects, report.epochs) == (0, 0, 0, 2)
    assert report.unavailability_s < 1.0  # a delta every tick (50 ms) while all write
    assert report.fault_at_s is None and report.recovery_s is None
    data = report.as_dict()
    assert data["converged"] is True and data["clients"] == 8 and data["rooms"] == 2
    assert "samples" not in data and "arrivals" not in data
    assert "ACKed updates lost: 0" in report.summary()
    # What happened over time, for plots: every update with its latency, every arrival.
    assert len(report.samples) == report.updates_sent
    assert all(outcome == "ACK" and latency is not None and 0 <= latency < 1.0
               for _, _, latency, outcome in report.samples)
    assert all(0 <= sent <= report.load_s for _, sent, _, _ in report.samples)
    assert {client for client, _, _ in report.arrivals} == {f"c{i}" for i in range(8)}
    for client in {client for client, _, _ in report.arrivals}:  # versions only go forward
        seen = [v for c, _, v in report.arrivals if c == client]
        assert seen == sorted(seen) and seen[-1] > 0


def test_dropped_connections_resume_without_loss(kasagi_instances: Any) -> None:
    (instance,) = kasagi_instances("--tick-rate", "20")
    report = run(instance, drop_connections)
    assert_consistent(report)
    assert report.reconnects == 8 and report.epochs == 1
    assert report.acked_lost == 0
    assert report.recovery_s is not None and report.recovery_s < 5


def test_a_paused_server_is_a_pause_in_deltas(kasagi_instances: Any) -> None:
    (instance,) = kasagi_instances("--tick-rate", "20")
    report = run(instance, pause_resume(instance, 1.0))
    assert_consistent(report)
    assert report.acked_lost == 0 and report.epochs == 1
    assert 1.0 <= report.unavailability_s < 3.0
    assert report.recovery_s is not None and report.recovery_s >= 1.0


def test_kill_and_restart_without_durability_loses_acked_updates(kasagi_instances: Any) -> None:
    (instance,) = kasagi_instances("--tick-rate", "20")
    report = run(instance, kill_restart(instance))
    # The room lived in the killed process only: the restarted one starts it afresh, and
    # every writer's first FULL_STATE from it lacks what was ACKed before.
    assert report.acked_lost >= 8, report.summary()
    assert {client for client, _ in report.lost_samples} >= {"c0"}
    assert report.epochs == 2 and report.reconnects == 8 and report.full_states >= 8
    assert_consistent(report)  # and yet every client agrees on the new state
    assert report.recovery_s is not None and report.fault_s is not None
    assert report.unavailability_s >= report.fault_s  # nothing while the server was down

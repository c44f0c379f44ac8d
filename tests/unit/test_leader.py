"""LeaderElector on a simulated clock against an in-memory Lease (resourceVersion, 409s, MicroTime check)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from kubernetes.client import V1Lease, V1LeaseSpec, V1ObjectMeta
from kubernetes.client.exceptions import ApiException

from reconciler.settings import LeaderSettings
from reconciler.watching.leader import LeaderElector, micro_time
from tests.fake_clock import FakeClock

MICRO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")  # what the apiserver's layout accepts
SETTINGS = LeaderSettings(enabled=True, lease_duration_s=15, renew_deadline_s=10, retry_period_s=2)


class FakeLeases:
    """One namespace's Leases, the way the apiserver treats `create` and `replace`."""

    def __init__(self) -> None:
        self.specs: dict[str, dict[str, Any]] = {}
        self.rv: dict[str, int] = {}
        self.writes: list[dict[str, Any]] = []
        self.on_read: Callable[[], None] | None = None
        self.on_replace: Callable[[], None] | None = None  # may raise, e.g. ApiException(500)

    def put(self, name: str, **spec: Any) -> None:
        """Another writer (a replica, kubectl) changes the Lease."""
        self.specs[name] = {**self.specs.get(name, {}), **spec}
        self.rv[name] = self.rv.get(name, 0) + 1

    def _lease(self, name: str) -> V1Lease:
        s = self.specs[name]
        return V1Lease(
            metadata=V1ObjectMeta(name=name, namespace="ns", resource_version=str(self.rv[name])),
            spec=V1LeaseSpec(
                holder_identity=s.get("holderIdentity"),
                lease_duration_seconds=s.get("leaseDurationSeconds"),
                acquire_time=s.get("acquireTime"),
                renew_time=s.get("renewTime"),
                lease_transitions=s.get("leaseTransitions"),
            ),
        )

    def _check(self, body: dict[str, Any]) -> None:
        for key in ("acquireTime", "renewTime"):
            if body["spec"].get(key) is not None and not MICRO_TIME.fullmatch(body["spec"][key]):
                raise ApiException(status=400, reason=f"bad MicroTime {body['spec'][key]!r}")

    def read_namespaced_lease(self, name: str, namespace: str) -> V1Lease:
        if self.on_read is not None:
            self.on_read()
        if name not in self.specs:
            raise ApiException(status=404, reason="Not Found")
        return self._lease(name)

    def create_namespaced_lease(self, namespace: str, body: dict[str, Any]) -> V1Lease:
        self._check(body)
        name = body["metadata"]["name"]
        if name in self.specs:
            raise ApiException(status=409, reason="AlreadyExists")
        self.writes.append(body)
        self.specs[name], self.rv[name] = dict(body["spec"]), 1
        return self._lease(name)

    def replace_namespaced_lease(self, name: str, namespace: str, body: dict[str, Any]) -> V1Lease:
        if self.on_replace is not None:
            self.on_replace()
        self._check(body)
        if name not in self.specs:
            raise ApiException(status=404, reason="Not Found")
        if body["metadata"].get("resourceVersion") != str(self.rv[name]):
            raise ApiException(status=409, reason="Conflict")
        self.writes.append(body)
        self.specs[name] = dict(body["spec"])
        self.rv[name] += 1
        return self._lease(name)


def elector(
    api: FakeLeases, clock: FakeClock, identity: str = "a", events: list[tuple[str, float]] | None = None
) -> LeaderElector:
    log = events if events is not None else []
    return LeaderElector(
        api,
        SETTINGS,
        namespace="ns",
        identity=identity,
        clock=clock,
        on_started_leading=lambda: log.append(("started", clock.t)),
        on_stopped_leading=lambda: log.append(("stopped", clock.t)),
    )


def held_by_other(api: FakeLeases, *, renew: str = "2001-01-01T00:00:00.000000Z") -> None:
    api.put(
        "connect-reconciler",
        holderIdentity="b",
        leaseDurationSeconds=15,
        acquireTime=renew,
        renewTime=renew,
        leaseTransitions=3,
    )


def test_micro_time_always_has_six_digits_and_z() -> None:
    assert micro_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000000Z"
    plus2 = timezone(timedelta(hours=2))
    assert micro_time(datetime(2026, 1, 2, 5, 4, 5, 103000, tzinfo=plus2)) == "2026-01-02T03:04:05.103000Z"


def test_creates_a_missing_lease_and_leads() -> None:
    api, clock = FakeLeases(), FakeClock()
    e = elector(api, clock)
    assert e.try_acquire_or_renew()
    spec = api.specs["connect-reconciler"]
    assert spec["holderIdentity"] == "a" and spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] == 0
    assert MICRO_TIME.fullmatch(spec["renewTime"]) and MICRO_TIME.fullmatch(spec["acquireTime"])


def test_a_released_lease_is_taken_at_once_and_counts_a_transition() -> None:
    api, clock = FakeLeases(), FakeClock()
    held_by_other(api)
    api.put("connect-reconciler", holderIdentity="", leaseDurationSeconds=1)
    assert elector(api, clock).try_acquire_or_renew()
    assert api.specs["connect-reconciler"]["holderIdentity"] == "a"
    assert api.specs["connect-reconciler"]["leaseTransitions"] == 4


def test_follower_waits_a_full_lease_duration_on_its_own_clock_whatever_the_record_says() -> None:
    # renewTime is 25 years old (the holder's clock is skewed): only our own clock counts.
    api, clock = FakeLeases(), FakeClock()
    held_by_other(api)
    e = elector(api, clock)
    assert not e.try_acquire_or_renew()
    clock.t = 14.9
    assert not e.try_acquire_or_renew()
    assert not e.is_leader and not api.writes
    clock.t = 15.0
    assert e.try_acquire_or_renew()
    spec = api.specs["connect-reconciler"]
    assert spec["holderIdentity"] == "a" and spec["leaseTransitions"] == 4
    assert spec["acquireTime"] == micro_time(clock.now())


def test_the_holders_renewals_restart_the_followers_timer() -> None:
    api, clock = FakeLeases(), FakeClock(horizon=100)
    held_by_other(api)
    renew = iter(range(1000))

    def holder_renews_until_20() -> None:
        if clock.t < 20:  # the record changes; its renewTime value is meaningless to the follower
            api.put("connect-reconciler", renewTime=f"2001-01-01T00:00:{next(renew) % 60:02d}.000000Z")

    api.on_read = holder_renews_until_20
    events: list[tuple[str, float]] = []
    e = elector(api, clock, events=events)
    e.run()
    # Reads every 2 s: the last change is seen at t=18, so the takeover is the first try at t >= 33.
    assert events[0] == ("started", 34.0)
    assert api.specs["connect-reconciler"]["leaseTransitions"] == 4
    assert [kind for kind, _ in events] == ["started"] and not e.lost


def test_renew_failures_stop_writes_before_the_deadline_and_end_the_term_at_it() -> None:
    api, clock = FakeLeases(), FakeClock()
    events: list[tuple[str, float]] = []
    e = elector(api, clock, events=events)
    seen: list[tuple[float, bool]] = []

    def apiserver_down() -> None:
        seen.append((clock.t, e.valid()))
        raise ApiException(status=503, reason="Service Unavailable")

    def start() -> None:
        events.append(("started", clock.t))
        api.on_replace = apiserver_down
        api.on_read = apiserver_down

    e.on_started_leading = start
    e.run()
    assert events == [("started", 0.0), ("stopped", 10.0)]
    assert e.lost and not e.is_leader and not e.valid() and e.done.is_set()
    # Valid only while the last renew (t=0) is younger than deadline 10 s minus the 2 s margin.
    valid_at = {t: v for t, v in seen}
    assert valid_at[6.0] is True and valid_at[8.0] is False
    assert not clock.stop.is_set()  # the term ended on its own, long before the horizon


def test_a_leader_renews_every_retry_period_keeping_acquire_time() -> None:
    api, clock = FakeLeases(), FakeClock(horizon=9)
    e = elector(api, clock)
    e.run()
    renewals = [w["spec"] for w in api.writes]
    assert len(renewals) == 5  # t = 0 (create), 2, 4, 6, 8
    assert {r["acquireTime"] for r in renewals} == {renewals[0]["renewTime"]}
    assert [r["leaseTransitions"] for r in renewals] == [0] * 5
    assert len({r["renewTime"] for r in renewals}) == 5


def test_release_hands_the_lease_over_without_waiting() -> None:
    api, clock = FakeLeases(), FakeClock()
    a = elector(api, clock, "a")
    assert a.try_acquire_or_renew()
    a.leading.set()
    assert a.release()
    spec = api.specs["connect-reconciler"]
    assert spec["holderIdentity"] == "" and spec["leaseDurationSeconds"] == 1
    assert MICRO_TIME.fullmatch(spec["renewTime"])
    assert not a.is_leader and not a.valid()
    b = elector(api, clock, "b")
    assert b.try_acquire_or_renew()  # at once: no lease duration to sit out
    assert api.specs["connect-reconciler"]["holderIdentity"] == "b"
    assert api.specs["connect-reconciler"]["leaseTransitions"] == 1
    assert not a.release()  # not leading: nothing to release


def test_a_conflicting_renew_rereads_and_decides() -> None:
    api, clock = FakeLeases(), FakeClock()
    e = elector(api, clock)
    assert e.try_acquire_or_renew()
    e.leading.set()
    # Someone touched the Lease (its resourceVersion moved) but it is still ours: renewed after a re-read.
    api.put("connect-reconciler")
    clock.t = 2
    assert e.try_acquire_or_renew()
    assert api.specs["connect-reconciler"]["renewTime"] == micro_time(clock.now())
    # Someone took it (409 on the fast path): the re-read shows another holder, just changed: no write.
    held_by_other(api)
    before = len(api.writes)
    clock.t = 4
    assert not e.try_acquire_or_renew()
    assert len(api.writes) == before and api.specs["connect-reconciler"]["holderIdentity"] == "b"


def test_two_replicas_racing_to_create_get_one_winner() -> None:
    api, clock = FakeLeases(), FakeClock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    assert a.try_acquire_or_renew()
    # b saw the 404 too, then its create lost the race: 409.
    assert not b._create(clock.monotonic())
    assert not b.try_acquire_or_renew()
    assert api.specs["connect-reconciler"]["holderIdentity"] == "a"


def test_wait_for_leadership_ends_on_stop_and_on_timeout() -> None:
    api, clock = FakeLeases(), FakeClock()
    e = elector(api, clock)
    assert not e.wait_for_leadership(clock.stop, timeout=5)
    assert clock.t == pytest.approx(5)
    clock.stop.set()
    assert not e.wait_for_leadership(clock.stop)
    e.leading.set()
    assert e.wait_for_leadership(clock.stop)

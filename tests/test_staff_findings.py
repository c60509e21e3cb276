"""Staff findings (alerts/findings.py), their digests (alerts/digest.py) and the digest e-mail,
on SQLite and PostgreSQL, delivered to a real SMTP sink."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from vigie.alerts.delivery import Deliverer, DeliveryOutcome
from vigie.alerts.digest import DigestBuilder, StaffDigest
from vigie.alerts.findings import FacilityFinding, FindingRouter, StaffFinding, acknowledge_finding, list_findings
from vigie.alerts.models import Notification
from vigie.config import Settings
from vigie.db import make_engine, make_sessionmaker
from vigie.registry import RegistryRow, upsert_rows

T0 = datetime(2026, 1, 12, 23, 0, tzinfo=timezone.utc)
SENDER = "vigie@commune.example"


@pytest.fixture
def sm(db_url):
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def window(room: str = "r-conseil", commune: str = "exemple", hours: float = 2.0, day: int = 0) -> StaffFinding:
    start = T0 - timedelta(hours=12) + timedelta(days=day)
    return StaffFinding(commune=commune, family="heating", kind="window_open_heating", subject=f"b-mairie/{room}",
                        start=start, end=start + timedelta(hours=hours),
                        evidence={"valve_pct": 64.0, "temperature_c": 17.2, "wasted_kwh": 3.1},
                        building_id="b-mairie", room_id=room, label=f"Mairie — {room}")


def silent(device: str, commune: str = "exemple") -> StaffFinding:
    return StaffFinding(commune=commune, family="heating", kind="silent", subject=f"heating:{device}",
                        start=T0 - timedelta(days=2), end=T0, evidence={"silent_for_s": 172800.0}, device_id=device,
                        label=f"TRV {device}")


def rows(sm) -> list[tuple[str, str, str]]:
    with sm() as s:
        return [(r.kind, r.subject, r.status) for r in s.scalars(select(FacilityFinding).order_by(FacilityFinding.id))]


def test_a_finding_opens_widens_and_resolves_once_the_pass_no_longer_sees_it(sm):
    router = FindingRouter(sm)
    scope = {("exemple", "window_open_heating")}
    assert router.apply([window()], scope, T0).opened == 1
    # the next pass sees the same room again the next day: the same row, widened
    out = router.apply([window(day=1, hours=3)], scope, T0 + timedelta(days=1))
    assert (out.opened, out.updated, out.resolved) == (0, 1, 0)
    with sm() as s:
        [row] = s.scalars(select(FacilityFinding)).all()
        assert row.start == window().start and row.end == window(day=1, hours=3).end
    # a pass of another kind does not resolve it; a pass of its kind that no longer sees it does
    assert router.apply([], {("exemple", "silent")}, T0 + timedelta(days=2)).resolved == 0
    assert router.apply([], scope, T0 + timedelta(days=2)).resolved == 1
    # seen again later: a new episode
    assert router.apply([window(day=3)], scope, T0 + timedelta(days=3)).opened == 1
    assert [r[2] for r in rows(sm)] == ["resolved", "open"]


def test_findings_of_another_commune_are_not_resolved_by_a_pass_that_did_not_evaluate_it(sm):
    router = FindingRouter(sm)
    router.apply([window(commune="autre")], {("autre", "window_open_heating")}, T0)
    router.apply([], {("exemple", "window_open_heating")}, T0 + timedelta(days=1))
    assert rows(sm) == [("window_open_heating", "b-mairie/r-conseil", "open")]


def test_two_passes_at_once_keep_one_row_per_episode(sm):
    barrier = threading.Barrier(4)

    def run():
        barrier.wait()
        FindingRouter(sm).apply([window(), silent("trv-0001")], {("exemple", "window_open_heating")}, T0)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(rows(sm)) == [("silent", "heating:trv-0001", "open"),
                                ("window_open_heating", "b-mairie/r-conseil", "open")]


def test_a_staff_finding_needs_a_known_family_and_a_subject():
    with pytest.raises(ValueError, match="family"):
        StaffFinding(commune="c", family="gas", kind="silent", subject="x", start=T0, end=T0)
    with pytest.raises(ValueError, match="subject"):
        StaffFinding(commune="c", family="water", kind="silent", subject="", start=T0, end=T0)


def staff(sm, *people: tuple[str, str, str]) -> None:
    with sm() as s:
        upsert_rows(s, [RegistryRow(household_id=None, person_id=pid, email=email, commune=commune, role="staff",
                                    language="fr") for pid, email, commune in people])


def test_one_digest_per_commune_announces_each_finding_once(sm, caplog):
    staff(sm, ("s-1", "agent1@mairie.example", "exemple"), ("s-2", "agent2@mairie.example", "exemple"))
    router, builder = FindingRouter(sm), DigestBuilder(sm)
    router.apply([window("r-conseil"), window("r-mariages"), silent("trv-0009"), window("r-ecole", commune="sans-agents")],
                 set(), T0)
    made = builder.queue(T0)
    assert len(made) == 2
    with sm() as s:
        digests = {d.commune: d for d in s.scalars(select(StaffDigest))}
        assert (digests["exemple"].new_count, digests["exemple"].notified) == (3, 2)
        assert (digests["sans-agents"].new_count, digests["sans-agents"].notified) == (1, 0)
        assert sorted(n.person_id for n in s.scalars(select(Notification))) == ["s-1", "s-2"]
    assert "has no staff" in caplog.text
    # nothing new: no digest; a new finding: a digest with it alone, recalling the open ones
    assert builder.queue(T0 + timedelta(hours=1)) == []
    router.apply([silent("trv-0010")], set(), T0 + timedelta(days=1))
    [later] = builder.queue(T0 + timedelta(days=1))
    with sm() as s:
        digest = s.get(StaffDigest, later)
        assert (digest.new_count, digest.open_count) == (1, 4)


def test_an_acknowledged_finding_is_not_announced_and_stays_until_it_clears(sm):
    router = FindingRouter(sm)
    router.apply([window()], set(), T0)
    with sm() as s:
        [row] = list_findings(s, communes=["exemple"])
        acknowledge_finding(s, row.id, "s-1", T0)
        s.commit()
    assert DigestBuilder(sm).queue(T0) == []
    router.apply([window(day=1)], set(), T0 + timedelta(days=1))
    assert rows(sm) == [("window_open_heating", "b-mairie/r-conseil", "acknowledged")]
    with sm() as s, pytest.raises(LookupError):
        acknowledge_finding(s, 999, "s-1")


def test_the_digest_email_lists_new_and_open_findings_in_local_time(sm, smtp_server):
    cfg = Settings(smtp_url=f"mailto://127.0.0.1:{smtp_server.port}?from={SENDER}", language="fr",
                   timezone="Europe/Paris")
    staff(sm, ("s-1", "agent@mairie.example", "exemple"))
    router, builder = FindingRouter(sm), DigestBuilder(sm)
    router.apply([window()], set(), T0)
    builder.queue(T0)
    Deliverer(sm, cfg).deliver_due(T0)
    router.apply([silent("trv-0009")], set(), T0 + timedelta(days=1))
    builder.queue(T0 + timedelta(days=1))
    assert Deliverer(sm, cfg).deliver_due(T0 + timedelta(days=1)) == DeliveryOutcome(sent=1)

    first, second = smtp_server.to("agent@mairie.example")
    assert first["Subject"] == "Vigie — 1 nouveau(x) constat(s) pour les services techniques (exemple)"
    body = first.get_body().get_content()
    # 2026-01-12 11:00 UTC is 12:00 in Paris (CET)
    for expected in ("Nouveaux constats (1)", "Mairie — r-conseil — chauffage fenêtre ouverte, du 12/01/2026 12:00 au "
                     "12/01/2026 14:00", "vanne 64,0 %", "température 17,2 °C", "gaspillage estimé 3,1 kWh",
                     "POST /findings/<n°>/ack"):
        assert expected in body, expected
    assert "Toujours ouverts" not in body
    body = second.get_body().get_content()
    assert "Nouveaux constats (1)" in body and "TRV trv-0009 — appareil muet" in body and "muet depuis 2,0 j" in body
    assert "Toujours ouverts (1)" in body and "chauffage fenêtre ouverte" in body

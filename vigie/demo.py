"""``vigie demo``: the whole main job on a bare machine, with simulated devices and injected faults.

What runs (each stage is the production code path; only the devices are simulated):

1. **Broker**: the one configured (``VIGIE_MQTT_URL``), else Vigie's embedded broker (amqtt, MQTT
   3.1.1, :mod:`vigie.embedded_broker`) on a free loopback port with two random accounts (ingestor,
   simulator); ``VIGIE_MQTT_PROTOCOL=auto`` resolves to 3.1.1 there.
2. **Store**: the configured InfluxDB (``VIGIE_INFLUX_URL``; database ``<VIGIE_INFLUX_DATABASE>_demo``,
   emptied, so the demo never mixes with real readings), else the embedded store (SQLite, behind
   the same interface: :mod:`vigie.store.embedded`) in ``store/`` of the demo directory
   (:func:`open_store`).
3. **Registry and alert state**: SQLite in the demo directory (``registry.db``), whatever
   ``VIGIE_DATABASE_URL`` says; the simulators' registries (``*.yaml`` there) and one staff member.
4. **Simulators** with injected faults (:func:`plan`), published through the broker as fast as it
   takes them (QoS 1), and the **ingestor** (durable session) storing them — a progress bar each.
   Water meters (one leak, one burst the meter itself flags) and heating rooms (a window left open,
   a seized valve) over the ``days`` days ending yesterday; assisted-living homes over the same
   days and today until now, one resident fallen in the bathroom 90 minutes ago.
5. **Analytics and alerts**: the J+1 leak check of every day (:func:`vigie.jobs.leak_job`), the
   daily heating and device-health job of every day just after it ends
   (:func:`vigie.heating_jobs.heating_job`), one live home tick now (:func:`vigie.home_jobs.home_job`:
   learns the routines, detects, escalates) — each routes its alerts and delivers. With no
   ``VIGIE_SMTP_URL``, delivery writes to the **local outbox** (``outbox/``, one ``.eml`` per message,
   :mod:`vigie.alerts.outbox`).
6. **API** (uvicorn) on a free loopback port (or ``port``) with a demo staff key; the demo reads its
   own alerts back through it.

It prints the alerts raised against the faults injected, the outbox, the URL and the key, writes the
same as ``summary.json`` in the demo directory, and either exits or keeps the service running (the
scheduler then ticks as ``vigie serve`` does) until Ctrl-C. The demo directory is emptied of a
previous run's files first. Logs go to ``demo.log`` there (redacted as everywhere).
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from vigie.config import Settings

log = logging.getLogger(__name__)

#: Files and folders of a previous run, removed at start (nothing else in the directory is touched).
RUN_FILES = ("registry.db", "registry.db-journal", "registry.db-wal", "registry.db-shm", "var", "outbox",
             "water.yaml", "homes.yaml", "heating.yaml", "staff.yaml", "summary.json", "demo.log", "broker.log",
             "store")
STAFF_ID = "demo-staff"
INGEST_USER, SIMULATOR_USER = "vigie-demo-ingest", "vigie-demo-simulator"


class DemoError(RuntimeError):
    """The demo cannot run: a service did not start or a stage failed (the message says which)."""


@dataclass(frozen=True)
class DemoOptions:
    """What to simulate and how to finish. ``days``: local days of history (≥ 3; the homes also
    get today until now); ``meters``, ``homes``, ``rooms``: fleet sizes (rooms: 8 per building);
    ``port``: API port (None: a free one); ``keep_running``: serve until Ctrl-C after the summary."""

    directory: Path
    days: int = 7
    meters: int = 30
    homes: int = 2
    rooms: int = 8
    seed: int = 0
    port: int | None = None
    keep_running: bool = False

    def __post_init__(self) -> None:
        if self.days < 3:
            raise ValueError(f"--days {self.days}: at least 3 (faults need days before and after them)")
        if self.meters < 12 or self.homes < 1 or self.rooms < 2:
            raise ValueError(f"--meters {self.meters}, --homes {self.homes}, --rooms {self.rooms}: at least 12 "
                             "meters (the faulty ones are at positions 3 and 11), 1 home and 2 rooms")


@dataclass(frozen=True)
class InjectedFault:
    """A fault put into a simulator: ``family`` (water, home, heating), ``subject`` (meter, home
    or room id), ``fault`` (the simulator's name), ``start`` (UTC) and the alert ``kinds`` any one
    of which, on that subject, counts as caught."""

    family: str
    subject: str
    fault: str
    start: datetime
    kinds: tuple[str, ...]


@dataclass(frozen=True)
class RaisedAlert:
    """An alert or staff finding the demo's run opened: ``family`` (water, home, heating, or
    device for a device's own health: silent, low battery, clock drift), ``subject`` (meter, home,
    room or device id), ``kind``, ``status``, ``since`` (UTC: first day, episode start or finding
    start)."""

    family: str
    subject: str
    kind: str
    status: str
    since: datetime


@dataclass
class DemoReport:
    """The outcome (``summary.json``): faults and what caught them, every alert raised, outbox
    messages, messages published and stored, the API's answers, timings (s)."""

    injected: list[InjectedFault]
    raised: list[RaisedAlert]
    caught: dict[int, bool]
    outbox: str | None
    outbox_messages: int
    published: dict[str, int]
    stored: int
    dead_letters: int
    api_url: str
    staff_token: str
    api_answers: dict[str, int]
    broker: str
    store: str
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def missed(self) -> list[InjectedFault]:
        return [f for i, f in enumerate(self.injected) if not self.caught.get(i)]

    def to_json(self) -> str:
        d = asdict(self)
        d["caught"] = [self.caught.get(i, False) for i in range(len(self.injected))]
        return json.dumps(d, default=str, indent=2, ensure_ascii=False)


# --- the simulated fleet and its faults ---------------------------------------------------------
@dataclass
class DemoPlan:
    """The three simulations (not yet published) and the faults injected into them."""

    water: object
    homes: object
    heating: object
    faults: list[InjectedFault]
    water_days: list[date]


def plan(options: DemoOptions, tz: str, now: datetime) -> DemoPlan:
    """Simulate the three fleets with their faults (``now``: aware, the homes' end). Water and
    heating cover the ``days`` local days ending yesterday; homes the same days and today."""
    from vigie.simulators.heating import (HeatingSimConfig, StuckValve, WindowOpen, plan_heating,
                                          simulate_heating)
    from vigie.simulators.home import HomeSimConfig, parse_anomaly_spec, simulate_homes
    from vigie.simulators.water import Leak, WaterSimConfig, simulate

    zone = ZoneInfo(tz)
    today = now.astimezone(zone).date()
    first = today - timedelta(days=options.days)
    days = [first + timedelta(days=i) for i in range(options.days)]

    def local(d: date, hh: int, mm: int = 0) -> datetime:
        return datetime(d.year, d.month, d.day, hh, mm)   # naive = the simulation's zone

    def utc(t: datetime) -> datetime:
        return t.replace(tzinfo=zone).astimezone(timezone.utc)

    # Water: hourly readings keep the message count small; a 15 L/h leak over the last two days
    # (continuous flow) and a 700 L/h burst of two hours on the last day, flagged by the meter.
    leak = Leak(3, 15.0, local(days[-2], 14))
    burst = Leak(11, 700.0, local(days[-1], 9), end=local(days[-1], 11), alarm="BURST")
    water = simulate(WaterSimConfig(meters=options.meters, days=options.days, start=first, tz=tz,
                                    seed=options.seed, intervals_min=(60,), faults=[leak, burst]))
    meter_of = {t.meter_index: t.meter_id for t in water.faults}
    faults = [InjectedFault("water", meter_of[3], "leak 15 L/h", utc(leak.start), ("continuous_flow",)),
              InjectedFault("water", meter_of[11], "burst 700 L/h (meter flags BURST)", utc(burst.start),
                            ("burst", "meter_flag"))]

    # Homes: the resident of the first home falls in the bathroom 90 minutes before now.
    fall_at = (now - timedelta(minutes=90)).astimezone(zone).replace(second=0, microsecond=0, tzinfo=None)
    homes = simulate_homes(HomeSimConfig(homes=options.homes, days=options.days + 1, start=first, seed=options.seed,
                                         end=now, anomalies=[parse_anomaly_spec(f"fall:0:{fall_at.isoformat()},240")]))
    faults += [InjectedFault("home", t.home, t.kind, t.start, ("long_bathroom", "inactivity"))
               for t in homes.truths]

    # Heating: a window left open over a weekday evening and night, a valve seized shut from a
    # weekday's midnight (both on weekday-occupied rooms, as the end-to-end scenario does).
    base = HeatingSimConfig(rooms=options.rooms, days=options.days, start=first, tz=tz, seed=options.seed,
                            holidays=None)
    rooms = plan_heating(base).rooms
    weekday_rooms = [r for r in rooms if r.type in ("bureau", "accueil", "reunion", "classe")] or list(rooms)
    one_trv = [r for r in weekday_rooms if len(r.trvs) == 1] or weekday_rooms
    valve_room = one_trv[0]
    window_room = next((r for r in weekday_rooms if r.index != valve_room.index),
                       next(r for r in rooms if r.index != valve_room.index))
    weekdays = [d for d in days[:-1] if d.weekday() < 5] or days[:-1]
    window_day = weekdays[-1]
    valve_day = next((d for d in reversed(weekdays) if d < window_day), days[0])
    window = WindowOpen(window_room.index, local(window_day, 17, 30), 15.0)
    valve_hours = float(min(72, 24 * (days[-1] - valve_day).days + 24))
    valve = StuckValve(valve_room.index, local(valve_day, 0), valve_hours)
    heating = simulate_heating(HeatingSimConfig(rooms=options.rooms, days=options.days, start=first, tz=tz,
                                                seed=options.seed, holidays=None, faults=[window, valve]))
    faults += [InjectedFault("heating", window_room.room_id, "window open 15 h", utc(window.start),
                             ("window_open_heating",)),
               InjectedFault("heating", valve_room.room_id, "valve seized shut", utc(valve.start),
                             ("cannot_reach_setpoint",))]
    return DemoPlan(water, homes, heating, faults, days)


# --- services -----------------------------------------------------------------------------------
def open_store(settings: Settings, directory: Path):
    """The demo's time-series store and its description: the configured InfluxDB
    (``VIGIE_INFLUX_URL`` set, or ``VIGIE_STORE=influx`` given) in its own emptied database, else
    the embedded store (:class:`vigie.store.embedded.EmbeddedStore`, SQLite) in
    ``directory/store``. Raises the store's errors."""
    wants_influx = settings.is_configured("influx_url") or (
        settings.is_configured("store") and str(getattr(settings, "store", "")) == "influx")
    if wants_influx:
        return _fresh_influx(settings), f"InfluxDB {settings.influx_url} database {settings.influx_database}"
    from vigie.store.embedded import EmbeddedStore

    store = EmbeddedStore(embedded_store_path(directory), settings.influx_database,
                          retention_policy=settings.influx_retention_policy, policies=settings.influx_extra_policies())
    store.ensure_database(settings.influx_retention_duration)
    return store, f"embedded store (SQLite) {store.location}"


def embedded_store_path(directory: Path) -> Path:
    return directory / "store" / "timeseries.sqlite"


def _fresh_influx(settings: Settings):
    """The demo's own InfluxDB database (``…_demo``), emptied: a previous run's readings would
    change what the detectors learn. Raises the store's errors."""
    from vigie.store import InfluxStore
    from vigie.store.influx import quote_ident

    store = InfluxStore.from_settings(settings)
    try:
        store.execute(f"DROP DATABASE {quote_ident(settings.influx_database)}")
        store.ensure_database(settings.influx_retention_duration)
    except Exception:
        store.close()
        raise
    return store


def demo_settings(base: Settings, directory: Path, api_port: int, days: int) -> dict:
    """The demo's settings over ``base`` (mqtt and store left to :func:`run_demo`)."""
    from vigie.alerts.outbox import outbox_url

    over = {"data_dir": directory / "var", "database_url": f"sqlite:///{directory / 'registry.db'}",
            "registry_file": None, "mqtt_client_id": "vigie-demo", "ingest_workers": 1,
            "influx_database": f"{base.influx_database}_demo", "api_host": "127.0.0.1", "api_port": api_port,
            "public_url": f"http://127.0.0.1:{api_port}", "write_batch_interval_s": 0.5,
            # Days of messages arrive within a minute: every device's clock would look days behind
            # the reception time. Only an offset beyond the whole simulated period is a drift here.
            "device_clock_drift_s": max(base.device_clock_drift_s, (days + 2) * 86_400.0)}
    if not base.is_configured("smtp_url"):
        over["smtp_url"] = outbox_url(directory / "outbox")
    return over


def _embedded_store_settings(directory: Path) -> dict:
    """The settings naming the demo's embedded store, for code that opens the store from settings."""
    fields = Settings.model_fields
    over = {}
    if "store" in fields:
        over["store"] = "embedded"
    if "store_file" in fields:
        over["store_file"] = embedded_store_path(directory)
    return over


class _Api:
    """uvicorn in a thread of this process."""

    def __init__(self, app, host: str, port: int) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", log_config=None))
        self.thread = threading.Thread(target=self.server.run, name="vigie-demo-api", daemon=True)

    def start(self, timeout_s: float = 20.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise DemoError("the API did not start (see demo.log)")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


# --- the run ------------------------------------------------------------------------------------
def run_demo(options: DemoOptions, base: Settings, out) -> DemoReport:
    """Run the demo (module docstring) printing to ``out`` (a :class:`rich.console.Console`).
    Returns the report; raises :class:`DemoError` when a stage cannot run."""
    from vigie.auth import Role, create_key
    from vigie.context import AppContext
    from vigie.db import make_engine, make_sessionmaker
    from vigie.embedded_broker import EmbeddedBroker, EmbeddedBrokerError, free_port
    from vigie.ingest.service import Ingestor
    from vigie.store import InfluxStore

    t_start = time.monotonic()
    seconds: dict[str, float] = {}
    directory = options.directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        p = directory / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    _log_to(directory / "demo.log")
    port = options.port or free_port()
    over = demo_settings(base, directory, port, options.days)
    broker = None
    closers: list = []
    try:
        if base.is_configured("mqtt_url"):
            broker_text = f"{base.mqtt_url} (VIGIE_MQTT_URL)"
            # A shared broker must not keep the demo's session (and queue for it) for days after.
            over["mqtt_session_expiry_s"] = min(base.mqtt_session_expiry_s, 600)
        else:
            broker = EmbeddedBroker(log_file=directory / "broker.log")
            ingest_account = broker.add_user(INGEST_USER)
            sim_account = broker.add_user(SIMULATOR_USER)
            try:
                broker.start()
            except EmbeddedBrokerError as exc:
                raise DemoError(str(exc)) from None
            closers.append(broker.stop)
            from pydantic import SecretStr

            over.update(mqtt_url=broker.url, mqtt_username=ingest_account.username,
                        mqtt_password=SecretStr(ingest_account.password), mqtt_ca_file=None,
                        simulator_mqtt_username=sim_account.username,
                        simulator_mqtt_password=SecretStr(sim_account.password))
            if base.mqtt_protocol == "auto":
                over["mqtt_protocol"] = EmbeddedBroker.PROTOCOL
            broker_text = f"embedded amqtt broker {broker.url} (MQTT {EmbeddedBroker.PROTOCOL})"
        settings = base.model_copy(update=over)
        out.print(f"[bold]Vigie demo[/bold] in {directory}")
        out.print(f"  broker: {broker_text}")
        store, store_text = open_store(settings, directory)
        if not isinstance(store, InfluxStore):
            settings = settings.model_copy(update=_embedded_store_settings(directory))
        closers.append(store.close)
        out.print(f"  store: {store_text}")
        engine = make_engine(settings.database_url)
        ctx = AppContext(settings, store, engine, make_sessionmaker(engine))
        closers.append(engine.dispose)

        # Simulate and register.
        t0 = time.monotonic()
        now = datetime.now(timezone.utc).replace(microsecond=0)
        with out.status("simulating the fleets…"):
            sims = plan(options, settings.timezone, now)
        _register(ctx, sims, directory)
        seconds["simulate"] = round(time.monotonic() - t0, 1)

        ingestor = Ingestor(settings, store, ctx.sessions)
        ingestor.start()
        closers.append(ingestor.stop)
        if not ingestor.wait_subscribed(30):
            raise DemoError(f"the ingestor did not subscribe on {settings.mqtt_url} (see demo.log)")

        t0 = time.monotonic()
        published = _publish_and_ingest(sims, settings, ingestor, out)
        seconds["publish_and_ingest"] = round(time.monotonic() - t0, 1)

        t0 = time.monotonic()
        with out.status("running the analytics: J+1 leak checks, heating and device health, home tick…"):
            _analyse(ctx, sims, settings)
        seconds["analytics"] = round(time.monotonic() - t0, 1)

        api = _Api(_create_app(ctx, ingestor), settings.api_host, port)
        api.start()
        closers.append(api.stop)
        with ctx.sessions() as s:
            token = create_key(s, Role.STAFF, person_id=STAFF_ID, commune=settings.commune, label="vigie demo").token
        api_url = f"http://127.0.0.1:{port}"
        answers = _ask_api(api_url, token)

        raised = _raised(ctx)
        caught = {i: any(a.family == f.family and a.subject == f.subject and a.kind in f.kinds for a in raised)
                  for i, f in enumerate(sims.faults)}
        outbox_dir = directory / "outbox" if str(settings.smtp_url or "").startswith("outbox://") else None
        outbox_n = len(list(outbox_dir.glob("*.eml"))) if outbox_dir and outbox_dir.is_dir() else 0
        stats = ingestor.stats()
        seconds["total"] = round(time.monotonic() - t_start, 1)
        report = DemoReport(injected=sims.faults, raised=raised, caught=caught,
                            outbox=str(outbox_dir) if outbox_dir else None, outbox_messages=outbox_n,
                            published=published, stored=stats.stored, dead_letters=sum(stats.dead_letters.values()),
                            api_url=api_url, staff_token=token, api_answers=answers, broker=broker_text,
                            store=store_text, seconds=seconds)
        (directory / "summary.json").write_text(report.to_json(), encoding="utf-8")
        print_report(report, settings, out)
        if options.keep_running:
            _serve_until_interrupted(ctx, out)
        return report
    finally:
        for close in reversed(closers):
            try:
                close()
            except Exception:   # one stage failing to stop must not keep the others running
                log.exception("demo: stopping %r failed", close)


def _log_to(path: Path) -> None:
    """Every log record to ``path`` (redacted), none on the console (the demo prints its own)."""
    from vigie.logs import RedactingFilter

    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in ("apprise", "httpx", "httpcore", "uvicorn.access", "apscheduler", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _register(ctx, sims: DemoPlan, directory: Path) -> None:
    """Write the simulators' registries and a staff member, load them all."""
    from vigie.registry import load_registry_file
    from vigie.simulators.heating import write_heating_registry
    from vigie.simulators.home import write_home_registry
    from vigie.simulators.water import write_registry

    s = ctx.settings
    write_registry(sims.water, directory / "water.yaml")
    write_home_registry(sims.homes, directory / "homes.yaml")
    write_heating_registry(sims.heating, directory / "heating.yaml", commune=s.commune)
    (directory / "staff.yaml").write_text(
        "staff:\n"
        f"  - {{id: {STAFF_ID}, name: Agent de démonstration, email: technique@mairie.example, language: "
        f"{s.language}, commune: {s.commune}}}\n", encoding="utf-8")
    with ctx.sessions() as session:
        for name in ("water.yaml", "homes.yaml", "heating.yaml", "staff.yaml"):
            load_registry_file(session, directory / name, default_commune=s.commune,
                               heating_comfort_c=s.heating_comfort_c, heating_setback_c=s.heating_setback_c)


def _publish_and_ingest(sims: DemoPlan, settings: Settings, ingestor, out) -> dict[str, int]:
    """Publish the three fleets one after the other in a thread while showing each one's progress
    and the ingestor's; return once everything published is stored."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vigie.simulators.publish import publish_messages, publish_readings

    pw = settings.simulator_mqtt_password
    creds = {"username": settings.simulator_mqtt_username, "password": pw.get_secret_value() if pw else None,
             "ca_file": settings.mqtt_ca_file, "protocol": settings.mqtt_protocol_version}
    # A device sends nothing dated after now (the water simulator closes its last day with a reading
    # just after midnight, and the broker's clock is the reception time).
    now = datetime.now(timezone.utc)
    water = [r for r in sims.water.published() if r.time <= now]
    homes = [m for m in sims.homes.messages() if m.time <= now]
    heating = [m for m in sims.heating.messages() if m.time <= now]
    totals = {"water": len(water), "homes": len(homes), "heating": len(heating)}
    sent = {k: 0 for k in totals}
    published: dict[str, int] = {}
    failure: list[BaseException] = []
    before = ingestor.stats().received

    def work() -> None:
        try:
            def progress(name):
                return lambda n, acked: sent.__setitem__(name, acked)
            published["water"] = publish_readings(water, settings.mqtt_url,
                                                  progress=progress("water"), **creds)
            published["homes"] = publish_messages(homes, settings.mqtt_url,
                                                  progress=progress("homes"), **creds)
            published["heating"] = publish_messages(heating, settings.mqtt_url,
                                                    progress=progress("heating"), **creds)
        except BaseException as exc:   # re-raised in the caller's thread
            failure.append(exc)

    total = sum(totals.values())
    thread = threading.Thread(target=work, name="vigie-demo-publish", daemon=True)
    columns = (TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=out, transient=False) as bar:
        tasks = {"water": bar.add_task(f"water meters ({len(sims.water.meters)})", total=totals["water"]),
                 "homes": bar.add_task(f"assisted-living homes ({len(sims.homes.homes)})", total=totals["homes"]),
                 "heating": bar.add_task(f"heating rooms ({len(sims.heating.plan.rooms)})", total=totals["heating"])}
        ingested = bar.add_task("ingested (MQTT → store)", total=total)
        thread.start()
        deadline = None
        while True:
            for name, task in tasks.items():
                bar.update(task, completed=published.get(name, sent[name]))
            stats = ingestor.stats()
            bar.update(ingested, completed=min(total, stats.received - before))
            if failure:
                raise DemoError(f"publishing failed: {failure[0]}")
            if not thread.is_alive():
                deadline = deadline or time.monotonic() + 600
                if stats.received - before >= total and ingestor.wait_idle(0.5, quiet_s=0.5):
                    bar.update(ingested, completed=total)
                    break
                if time.monotonic() > deadline:
                    raise DemoError(f"the ingestor stored {stats.received - before} of {total} messages in 10 min")
            time.sleep(0.2)
    return published


def _analyse(ctx, sims: DemoPlan, settings: Settings) -> None:
    """The scheduled jobs over the simulated period: J+1 for every day, heating and device health
    just after each day ends, one home tick now; each delivers what it raised."""
    from vigie.heating_jobs import heating_job
    from vigie.home_jobs import home_job
    from vigie.jobs import leak_job

    zone = ZoneInfo(settings.timezone)
    leak_job(ctx, sims.water_days[0], sims.water_days[-1])
    for day in sims.water_days:
        after = datetime.combine(day + timedelta(days=1), datetime.min.time().replace(minute=10), zone)
        heating_job(ctx, day, after.astimezone(timezone.utc))
    outcome = home_job(ctx, datetime.now(timezone.utc))
    if not outcome.detected:
        raise DemoError("the home tick could not detect (see demo.log)")


def _create_app(ctx, ingestor):
    from vigie.api.app import create_app

    return create_app(ctx, ingestor=ingestor)


def _ask_api(api_url: str, token: str) -> dict[str, int]:
    """What the API answers the staff key: status codes of /health, and the number of items of
    the open alerts, home alerts and findings. Raises DemoError when it does not answer."""
    import httpx

    answers: dict[str, int] = {}
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=api_url, headers=headers, timeout=30) as http:
            answers["health_status"] = http.get("/health").status_code
            for path in ("/alerts?status=open", "/home-alerts?status=open", "/findings"):
                r = http.get(path)
                r.raise_for_status()
                answers[path] = len(r.json())
    except httpx.HTTPError as exc:
        raise DemoError(f"the API did not answer at {api_url}: {exc}") from None
    return answers


def _raised(ctx) -> list[RaisedAlert]:
    """Every water alert, home alert and staff finding in the demo's database."""
    from sqlalchemy import select

    from vigie.alerts.findings import FacilityFinding
    from vigie.alerts.models import Alert, HomeAlert
    from vigie.analytics.devices import DeviceHealthKind

    device_kinds = {str(k) for k in DeviceHealthKind}
    zone = ZoneInfo(ctx.settings.timezone)
    out: list[RaisedAlert] = []
    with ctx.sessions() as s:
        for a in s.scalars(select(Alert).order_by(Alert.id)):
            since = datetime.combine(a.first_day, datetime.min.time(), zone).astimezone(timezone.utc)
            out.append(RaisedAlert("water", a.meter_id, a.kind, a.status, since))
        for h in s.scalars(select(HomeAlert).order_by(HomeAlert.id)):
            out.append(RaisedAlert("home", h.household_id, h.kind, h.status, h.start))
        for f in s.scalars(select(FacilityFinding).order_by(FacilityFinding.id)):
            if f.kind in device_kinds:   # a device's own health, whatever its family
                out.append(RaisedAlert("device", f.device_id or f.subject, f.kind, f.status, f.start))
            else:
                out.append(RaisedAlert(f.family, f.room_id or f.building_id or f.subject, f.kind, f.status, f.start))
    return out


def print_report(report: DemoReport, settings: Settings, out) -> None:
    """The summary: faults injected and whether caught, alerts raised, outbox, API, key."""
    from rich.table import Table

    zone = ZoneInfo(settings.timezone)

    def local(t: datetime) -> str:
        return t.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    out.print()
    table = Table(title=f"Alerts raised ({len(report.raised)})", title_justify="left")
    for col in ("family", "subject", "kind", "status", f"since ({settings.timezone})"):
        table.add_column(col)
    for a in report.raised:
        table.add_row(a.family, a.subject, a.kind, a.status, local(a.since))
    out.print(table)
    faults = Table(title="Injected faults", title_justify="left")
    for col in ("family", "subject", "fault", "from", "caught as"):
        faults.add_column(col)
    for i, f in enumerate(report.injected):
        found = sorted({a.kind for a in report.raised if a.subject == f.subject and a.kind in f.kinds})
        faults.add_row(f.family, f.subject, f.fault, local(f.start),
                       ", ".join(found) if report.caught.get(i) else "[red]MISSED[/red]")
    out.print(faults)
    # One plain line per alert too: stable to read by a script (`grep '^ALERT '`).
    for a in report.raised:
        out.print(f"ALERT {a.family} {a.subject} {a.kind} {a.status}", markup=False, highlight=False, soft_wrap=True)
    for f in report.missed:
        out.print(f"MISSED {f.family} {f.subject} {f.fault}", markup=False, highlight=False, soft_wrap=True)
    out.print()
    if report.outbox:
        out.print(f"Outbox: {report.outbox_messages} message(s) in {report.outbox}/ (one .eml each: "
                  "what residents, caregivers and staff would have received)", soft_wrap=True)
    else:
        out.print("Messages: delivered through VIGIE_SMTP_URL", soft_wrap=True)
    out.print(f"Published {sum(report.published.values())} messages "
              f"({', '.join(f'{k} {v}' for k, v in report.published.items())}); stored {report.stored} points; "
              f"{report.dead_letters} dead letter(s); {report.seconds.get('total', 0):.0f} s", soft_wrap=True)
    out.print(f"API: {report.api_url}/docs  (open alerts {report.api_answers.get('/alerts?status=open')}, "
              f"home alerts {report.api_answers.get('/home-alerts?status=open')}, "
              f"findings {report.api_answers.get('/findings')})", soft_wrap=True)
    out.print(f"Demo staff key: {report.staff_token}", markup=False, highlight=False, soft_wrap=True)
    out.print(f"  curl -H 'Authorization: Bearer {report.staff_token}' '{report.api_url}/alerts?status=open'",
              markup=False, highlight=False, soft_wrap=True)


def _serve_until_interrupted(ctx, out) -> None:
    """Keep ingest, the API and the scheduler (minute home tick, daily jobs, delivery) running
    until SIGINT/SIGTERM."""
    from vigie.scheduler import build_scheduler
    from vigie.service import wait_for_signal

    scheduler = build_scheduler(ctx)
    scheduler.start()
    out.print("\nThe demo keeps running (ingest, API, scheduler): Ctrl-C to stop.")
    try:
        wait_for_signal()
    finally:
        scheduler.shutdown(wait=True)

"""The ``vigie`` command line (Typer). ``vigie --help`` lists the commands."""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(help="Vigie: telemetry and alerting for municipalities.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
simulate_app = typer.Typer(help="Publish simulated devices over MQTT.", no_args_is_help=True)
replay_app = typer.Typer(help="Replay real data sets over MQTT.", no_args_is_help=True)
registry_app = typer.Typer(help="The registry of households, meters and residents.", no_args_is_help=True)
app.add_typer(simulate_app, name="simulate")
app.add_typer(replay_app, name="replay")
app.add_typer(registry_app, name="registry")
broker_app = typer.Typer(help="The MQTT broker's credentials and ACL.", no_args_is_help=True)
app.add_typer(broker_app, name="broker")
keys_app = typer.Typer(help="API keys: create, list, rotate, revoke (docs/security.md).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
db_app = typer.Typer(help="The relational store's schema: migrations (docs/schema.md).", no_args_is_help=True)
app.add_typer(db_app, name="db")

log = logging.getLogger("vigie")


def _setup_logging(verbose: bool = False) -> None:
    from vigie.logs import setup_logging

    setup_logging(verbose)


def _settings():
    from pydantic import ValidationError

    from vigie.config import get_settings

    try:
        return get_settings()
    except ValidationError as exc:
        for err in exc.errors():
            name = "VIGIE_" + "_".join(str(x) for x in err["loc"]).upper()
            typer.echo(f"configuration error: {name}={err.get('input')!r}: {err['msg']}", err=True)
        raise typer.Exit(2)
    except (ValueError, OSError) as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2)


def _context(**kw):
    from vigie.context import AppContext
    from vigie.store import StoreError

    settings = _settings()
    try:
        return AppContext.create(settings, **kw)
    except StoreError as exc:
        typer.echo(f"InfluxDB error (VIGIE_INFLUX_URL={settings.influx_url}): {exc}", err=True)
        raise typer.Exit(3)


def _parse_day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"expected YYYY-MM-DD, got {value!r}", param_hint=name)


@app.command()
def serve(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    """Run ingest, the daily J+1 scheduler, the alert router with delivery, and the HTTP API."""
    _setup_logging(verbose)
    from vigie.service import run_service

    run_service(_context())


@app.command()
def ingest(
    wait_idle: Annotated[bool, typer.Option("--wait-idle", help="Exit once the broker has delivered "
                                            "everything queued and every reading is in InfluxDB")] = False,
    timeout: Annotated[float, typer.Option(help="With --wait-idle: give up after this many seconds")] = 600.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the MQTT ingestor alone (durable session: it picks up what was published while it was away)."""
    _setup_logging(verbose)
    from vigie.ingest.service import Ingestor

    ctx = _context()
    ing = Ingestor(ctx.settings, ctx.store, ctx.sessions)
    ing.start()
    try:
        if wait_idle:
            ok = ing.wait_idle(timeout)
            stats = ing.stats()
            typer.echo(json.dumps(stats.as_dict() if hasattr(stats, "as_dict") else vars(stats), default=str))
            if not ok:
                typer.echo(f"not idle after {timeout:.0f}s", err=True)
                raise typer.Exit(1)
        else:
            from vigie.service import wait_for_signal

            wait_for_signal()
    finally:
        ing.stop()


@app.command()
def leaks(
    day: Annotated[Optional[str], typer.Option("--day", help="Local day to check, YYYY-MM-DD")] = None,
    from_: Annotated[Optional[str], typer.Option("--from", help="First day of a range")] = None,
    to: Annotated[Optional[str], typer.Option("--to", help="Last day of a range (inclusive)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array")] = False,
    show_all: Annotated[bool, typer.Option("--all", help="Also print rules that passed")] = False,
    no_alerts: Annotated[bool, typer.Option("--no-alerts", help="Only check and store; do not route "
                                            "alerts or send messages")] = False,
) -> None:
    """Run the J+1 leak check (the scheduled job's code path) and print flagged meters.

    Prints every result whose status is ``leak`` or ``insufficient_data`` (``--all``: every result).
    Exit code 0 whatever was found.
    """
    _setup_logging()
    if day and (from_ or to):
        raise typer.BadParameter("use --day or --from/--to, not both")
    if day:
        first = last = _parse_day(day, "--day")
    elif from_ and to:
        first, last = _parse_day(from_, "--from"), _parse_day(to, "--to")
        if last < first:
            raise typer.BadParameter("--to is before --from")
    else:
        raise typer.BadParameter("give --day D or --from D1 --to D2")
    from vigie.jobs import leak_job
    from vigie.store import StoreError

    ctx = _context()
    today = datetime.now(ctx.tz).date()
    if last >= today:
        raise typer.BadParameter(f"{last} is not over yet in {ctx.settings.timezone}: the check runs on "
                                 "past days (J+1)")
    try:
        results = leak_job(ctx, first, last, route=not no_alerts)
    except StoreError as exc:
        typer.echo(f"InfluxDB error (VIGIE_INFLUX_URL={ctx.settings.influx_url}): {exc}", err=True)
        raise typer.Exit(3)
    shown = [r for r in results if show_all or r.status != "ok"]
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in shown], ensure_ascii=False))
        return
    if not show_all:
        # The Warsmann rule lacks history for its first weeks: count those instead of listing them.
        no_history = [r for r in shown if r.status == "insufficient_data" and r.detail == "history"]
        shown = [r for r in shown if r not in no_history]
    if not shown:
        typer.echo(f"no meter flagged from {first} to {last} ({len(results)} checks)")
    else:
        typer.echo(f"{'day':10}  {'meter_id':36}  {'rule':20}  {'status':17}  {'rate L/h':>9}  {'volume L':>9}  detail")
    for r in shown:
        rate = "" if r.rate_l_per_h is None else f"{r.rate_l_per_h:9.1f}"
        vol = "" if r.volume_l is None else f"{r.volume_l:9.0f}"
        typer.echo(f"{r.day!s:10}  {r.meter_id:36}  {r.rule!s:20}  {r.status!s:17}  {rate:>9}  {vol:>9}  {r.detail}")
    if not show_all and no_history:
        typer.echo(f"({len(no_history)} abnormal-consumption checks lack the history to compare with; --all lists them)")


@app.command()
def events(
    from_: Annotated[str, typer.Option("--from", help="First local day, YYYY-MM-DD")],
    to: Annotated[str, typer.Option("--to", help="Last local day (inclusive), YYYY-MM-DD")],
    home: Annotated[Optional[str], typer.Option("--home", help="Only this household")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array")] = False,
) -> None:
    """Run the home detectors over a stored period exactly as the minute tick would have run live
    (routines relearned each day at VIGIE_HOME_LEARN_TIME from the data before it; every tick sees
    only the data up to it) and list the events, one per episode. Routes no alert, sends nothing.

    ``--json``: one array of objects with ``home_id``, ``kind``, ``start``, ``detected_at`` (the
    first tick raising it), ``severity``, ``sensor_id``, ``evidence`` (last activity and room,
    observed, learned normal, threshold, unit, limited_history) and ``summary``.
    """
    _setup_logging()
    first, last = _parse_day(from_, "--from"), _parse_day(to, "--to")
    if last < first:
        raise typer.BadParameter("--to is before --from")
    from vigie.home_jobs import backtest_events
    from vigie.store import StoreError

    ctx = _context()
    lang, tz = ctx.settings.language, ctx.settings.timezone
    try:
        found = backtest_events(ctx, first, last, [home] if home else None)
    except ValueError as exc:
        typer.echo(f"events: {exc}", err=True)
        raise typer.Exit(2)
    except StoreError as exc:
        typer.echo(f"InfluxDB error (VIGIE_INFLUX_URL={ctx.settings.influx_url}): {exc}", err=True)
        raise typer.Exit(3)
    if as_json:
        top = ("home_id", "kind", "start", "detected_at", "severity", "sensor_id")
        rows = []
        for e in found:
            d = e.to_dict()
            rows.append({**{k: d.pop(k) for k in top}, "evidence": d, "summary": e.summary(lang, tz)})
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    if not found:
        typer.echo(f"no home event from {first} to {last}")
        return
    typer.echo(f"{'start (' + tz + ')':25}  {'home_id':16}  {'kind':15}  {'severity':8}  {'raised':5}  evidence")
    for e in found:
        start = e.start.astimezone(ctx.tz).strftime("%Y-%m-%d %H:%M:%S")
        raised = e.detected_at.astimezone(ctx.tz).strftime("%H:%M")
        typer.echo(f"{start:25}  {e.home_id:16}  {e.kind!s:15}  {e.severity!s:8}  {raised:5}  "
                   f"{(e.sensor_id + ': ') if e.sensor_id else ''}{e.summary(lang, tz)}")


@app.command()
def deliver() -> None:
    """Send the notifications that are due now (first sends and retries)."""
    _setup_logging()
    from vigie.alerts.delivery import Deliverer

    ctx = _context(ensure_influx=False)
    outcome = Deliverer(ctx.sessions, ctx.settings).deliver_due()
    typer.echo(json.dumps(dataclasses.asdict(outcome)))


@app.command()
def escalate(
    at: Annotated[str | None, typer.Option(help="Tick as of this ISO 8601 moment with offset (default: now)")] = None,
) -> None:
    """One home-alert escalation tick — the levels, repeats and reminders due — then delivery: what
    `vigie serve` runs every minute. Prints the tick's counts as JSON."""
    _setup_logging()
    from vigie.alerts.delivery import Deliverer
    from vigie.alerts.escalation import Escalation

    now = None
    if at is not None:
        try:
            now = datetime.fromisoformat(at)
        except ValueError:
            now = None
        if now is None or now.tzinfo is None:
            typer.echo(f"--at must be an ISO 8601 moment with an offset, got {at!r}", err=True)
            raise typer.Exit(2)
    ctx = _context(ensure_influx=False)
    outcome = Escalation(ctx.sessions, ctx.settings).tick(now)
    delivered = Deliverer(ctx.sessions, ctx.settings).deliver_due(now)
    typer.echo(json.dumps({**dataclasses.asdict(outcome), "delivery": dataclasses.asdict(delivered)}))


@app.command("dead-letters")
def dead_letters(limit: Annotated[int, typer.Option(min=1, help="Newest N entries")] = 20) -> None:
    """Print the newest dead letters (messages the ingestor refused) as JSON lines."""
    from vigie.ingest.deadletter import read_data_dir_dead_letters

    settings = _settings()
    for dl in read_data_dir_dead_letters(settings.data_dir, limit=limit):
        typer.echo(dl.to_json())


@registry_app.command("load")
def registry_load(path: Path) -> None:
    """Load (upsert) a YAML or CSV registry file into the database."""
    from vigie.registry import RegistryError, load_registry_file

    ctx = _context(ensure_influx=False)
    try:
        with ctx.sessions() as s:
            counts = load_registry_file(s, path, default_commune=ctx.settings.commune)
    except (RegistryError, OSError) as exc:
        typer.echo(f"registry error: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(json.dumps(counts))


def _publisher_credentials(settings) -> dict:
    """Broker credentials of the simulator and replays: their own test-gateway user, never the
    service account's (which may only subscribe)."""
    pw = settings.simulator_mqtt_password
    return {"username": settings.simulator_mqtt_username, "password": pw.get_secret_value() if pw else None,
            "ca_file": settings.mqtt_ca_file}


def _progress(label: str):
    """A progress callback printing to stderr at most every 5 %."""
    state = {"last": -1}

    def show(sent: int, acked: int, total: int | None = None) -> None:
        if total:
            pct = int(100 * acked / total)
            if pct // 5 != state["last"]:
                state["last"] = pct // 5
                typer.echo(f"{label}: {acked}/{total} acknowledged ({pct} %)", err=True)
        else:
            typer.echo(f"{label}: {acked} acknowledged", err=True)

    return show


@broker_app.command("credentials")
def broker_credentials(
    out: Annotated[Path, typer.Option("--out", help="Directory of the Mosquitto passwd and acl files")],
    rotate: Annotated[list[str], typer.Option(help="Give this credential (gateway, meter, service or "
                                              "simulator user) a new password (repeatable)")] = [],
    simulator: Annotated[bool, typer.Option(help="Also a test publisher allowed on every water and home topic "
                                            "(VIGIE_SIMULATOR_MQTT_USERNAME); for testing only")] = False,
    secrets: Annotated[Optional[Path], typer.Option(help="Append new passwords here (0600; default "
                                                    "OUT/new-credentials)")] = None,
) -> None:
    """Write Mosquitto's password file (hashed by mosquitto_passwd) and ACL from the registry: one
    credential per gateway or gateway-less meter, one per home's zigbee2mqtt bridge (user = the
    household id), the service account (VIGIE_MQTT_USERNAME) may subscribe. Existing passwords are
    kept; new ones are written once to the secrets file. Reload Mosquitto afterwards (SIGHUP)."""
    from sqlalchemy import select

    from vigie.broker_auth import (DEFAULT_SIMULATOR_USER, BrokerAuthError, MeterRoute, SensorRoute,
                                   plan_credentials, write_broker_files)
    from vigie.registry import Meter
    from vigie.sensors import Sensor

    settings = _settings()
    if not settings.mqtt_username:
        typer.echo("broker credentials: set VIGIE_MQTT_USERNAME (the ingestor's broker user)", err=True)
        raise typer.Exit(2)
    ctx = _context(ensure_influx=False)
    with ctx.sessions() as s:
        meters = [MeterRoute(*row) for row in s.execute(select(Meter.id, Meter.gateway, Meter.topic_name))]
        sensors = [SensorRoute(*row) for row in s.execute(select(Sensor.household_id, Sensor.friendly_name))]
    try:
        creds = plan_credentials(meters, settings.topic_decoders(), settings.mqtt_username,
                                 (settings.simulator_mqtt_username or DEFAULT_SIMULATOR_USER) if simulator else None,
                                 sensors=sensors, home_topic_decoders=settings.home_topic_decoders())
        report = write_broker_files(out, creds, rotate=rotate, secrets_path=secrets)
    except (BrokerAuthError, OSError) as exc:
        typer.echo(f"broker credentials: {exc}", err=True)
        raise typer.Exit(2)
    if report.secrets:
        typer.echo(f"new passwords in {report.secrets} (mode 0600): provision them, then delete the file", err=True)
    typer.echo(json.dumps(dataclasses.asdict(report), default=str))


@simulate_app.command("water")
def simulate_water(
    meters: Annotated[int, typer.Option(min=1, help="Number of meters")] = 100,
    days: Annotated[int, typer.Option(min=1, help="Number of local days")] = 7,
    start: Annotated[Optional[str], typer.Option(help="First local day, YYYY-MM-DD (default: the "
                                                 "DAYS days ending yesterday)")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same fleet)")] = 0,
    leak: Annotated[list[str], typer.Option(help="METER:RATE:START — leak of RATE L/h on the meter at "
                                            "fleet position METER from START (repeatable)")] = [],
    gap: Annotated[list[str], typer.Option(help="METER:START:HOURS — no readings (repeatable)")] = [],
    replace: Annotated[list[str], typer.Option(help="METER:AT — meter replaced, index restarts near 0")] = [],
    duplicates: Annotated[float, typer.Option(help="Share of meters (0–1) with one message sent twice")] = 0.0,
    scenario: Annotated[Optional[str], typer.Option(help="'e2e': the end-to-end test's fleet (500 meters, "
                                                    "30 days, 6 leaks, gaps, a replacement, duplicates)")] = None,
    speed: Annotated[Optional[float], typer.Option(help="Simulated seconds per wall second "
                                                   "(default: as fast as possible)")] = None,
    ground_truth: Annotated[Optional[Path], typer.Option(help="Write the injected faults here (JSON)")] = None,
    registry: Annotated[Optional[Path], typer.Option(help="Write a registry YAML for the simulated fleet")] = None,
    load_registry: Annotated[bool, typer.Option(help="Also load that registry into the database")] = True,
) -> None:
    """Publish a simulated water-meter fleet as wmbusmeters JSON over MQTT (QoS 1)."""
    from vigie.simulators.publish import publish_readings
    from vigie.simulators.water import (Duplicates, WaterSimConfig, e2e_scenario, parse_gap_spec,
                                        parse_leak_spec, parse_replacement_spec, simulate, write_registry)

    settings = _settings()
    try:
        if scenario == "e2e":
            cfg = e2e_scenario(seed, **({"start": _parse_day(start, "--start")} if start else {}))
        elif scenario is not None:
            raise typer.BadParameter(f"unknown scenario {scenario!r} (known: e2e)", param_hint="--scenario")
        else:
            faults = ([parse_leak_spec(x) for x in leak] + [parse_gap_spec(x) for x in gap]
                      + [parse_replacement_spec(x) for x in replace])
            if duplicates:
                faults.append(Duplicates(count=1, share=duplicates))
            cfg = WaterSimConfig(meters=meters, days=days, seed=seed, faults=faults,
                                 start=_parse_day(start, "--start") if start else None)
        result = simulate(cfg)
    except ValueError as exc:
        typer.echo(f"simulate water: {exc}", err=True)
        raise typer.Exit(2)
    if ground_truth:
        result.write_ground_truth(ground_truth)
    if registry:
        write_registry(result, registry)
        if load_registry:
            registry_load(registry)
    total = len(result.publish_order)
    typer.echo(f"publishing {total} readings of {cfg.meters} meters over {cfg.days} days to {settings.mqtt_url}",
               err=True)
    show = _progress("simulate water")
    n = publish_readings(result.published(), settings.mqtt_url, speed=speed,
                         progress=lambda sent, acked: show(sent, acked, total), **_publisher_credentials(settings))
    typer.echo(json.dumps({"published": n, "meters": cfg.meters, "days": cfg.days,
                           "faults": len(result.faults)}))


@simulate_app.command("home")
def simulate_home(
    homes: Annotated[int, typer.Option(min=1, help="Number of homes")] = 10,
    days: Annotated[int, typer.Option(min=1, help="Number of local days")] = 14,
    start: Annotated[Optional[str], typer.Option(help="First local day, YYYY-MM-DD (default: the "
                                                 "DAYS days ending yesterday)")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same homes)")] = 0,
    anomaly: Annotated[list[str], typer.Option(help="fall:HOME:START[,MINUTES] | no-wakeup:HOME:DAY[,MINUTES] | "
                                               "night-wandering:HOME:START[,MINUTES] | "
                                               "decline:HOME:DAY[,DAYS[,FINAL_LEVEL]] | "
                                               "battery:HOME:AT,SENSOR[,DAYS] (HOME = position 0…N-1; "
                                               "repeatable)")] = [],
    speed: Annotated[Optional[float], typer.Option(help="Simulated seconds per wall second")] = None,
    as_fast_as_possible: Annotated[bool, typer.Option("--as-fast-as-possible",
                                                      help="Publish without pacing (the default)")] = False,
    ground_truth: Annotated[Optional[Path], typer.Option(help="Write the injected anomalies here (JSON lines)")] = None,
    registry_out: Annotated[Optional[Path], typer.Option(help="Write the homes' registry YAML (households, "
                                                         "people, sensors) here")] = None,
    load_registry: Annotated[bool, typer.Option(help="Also load that registry into the database before "
                                                "publishing (the ingestor refuses unknown sensors)")] = True,
    end: Annotated[Optional[str], typer.Option(help="Stop the period at this moment, 'now' or ISO 8601 with an "
                                               "offset (with --start: days that end now, for live tests)")] = None,
) -> None:
    """Publish simulated assisted-living homes as zigbee2mqtt messages over MQTT (QoS 1)."""
    from vigie.simulators.publish import publish_messages
    from vigie.simulators.home import (HomeSimConfig, parse_anomaly_spec, simulate_homes,
                                       write_home_registry)

    if speed is not None and as_fast_as_possible:
        raise typer.BadParameter("give --speed or --as-fast-as-possible, not both", param_hint="--speed")
    settings = _settings()
    try:
        end_at = None
        if end is not None:
            end_at = datetime.now().astimezone() if end == "now" else datetime.fromisoformat(end)
        cfg = HomeSimConfig(homes=homes, days=days, seed=seed, anomalies=[parse_anomaly_spec(a) for a in anomaly],
                            start=_parse_day(start, "--start") if start else None, end=end_at)
        result = simulate_homes(cfg)
    except ValueError as exc:
        typer.echo(f"simulate home: {exc}", err=True)
        raise typer.Exit(2)
    if ground_truth:
        result.write_ground_truth(ground_truth)
    if registry_out:
        write_home_registry(result, registry_out)
        if load_registry:
            registry_load(registry_out)
    total = len(result)
    typer.echo(f"publishing {total} zigbee2mqtt messages of {homes} homes over {days} days to {settings.mqtt_url}",
               err=True)
    show = _progress("simulate home")
    n = publish_messages(result.messages(), settings.mqtt_url, speed=speed,
                         progress=lambda sent, acked: show(sent, acked, total), **_publisher_credentials(settings))
    typer.echo(json.dumps({"published": n, "homes": homes, "days": days, "anomalies": len(result.truths)}))


@replay_app.command("daiad")
def replay_daiad_cmd(
    files: Annotated[list[Path], typer.Argument(help="DAIAD trial CSV files (user key;datetime;meter reading;diff)")],
    tz: Annotated[str, typer.Option(help="Zone of the files' wall-clock times")] = "Europe/Madrid",
    speed: Annotated[Optional[float], typer.Option(help="Simulated seconds per wall second")] = None,
    register: Annotated[bool, typer.Option(help="Register the replayed meters (one household each) "
                                           "before publishing")] = True,
) -> None:
    """Publish DAIAD smart-meter readings as wmbusmeters JSON (meter id = the user key); returns once
    the broker has acknowledged all of them."""
    from vigie.registry import upsert_rows
    from vigie.simulators.replay_daiad import DaiadFormatError, daiad_registry_rows, load_daiad, replay_daiad

    settings = _settings()
    try:
        data = load_daiad(files, tz)
        if register:
            ctx = _context(ensure_influx=False)
            with ctx.sessions() as s:
                upsert_rows(s, daiad_registry_rows(sorted(data.readings["meter_id"].unique())),
                            default_commune=settings.commune)
        report = replay_daiad(files, settings.mqtt_url, tz, data=data, speed=speed,
                              progress=_progress("replay daiad"), **_publisher_credentials(settings))
    except (DaiadFormatError, OSError) as exc:
        typer.echo(f"replay daiad: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(json.dumps(dataclasses.asdict(report), default=str))


@replay_app.command("ordonez")
def replay_ordonez_cmd(
    source: Annotated[Path, typer.Argument(metavar="SENSORS_FILE", help="OrdonezA_Sensors.txt (its "
                                           "OrdonezA_ADLs.txt beside it), or their directory; read in place, "
                                           "never copied")],
    home: Annotated[str, typer.Option(help="Household id of the replayed home (also its topic prefix)")] = "ordonez-a",
    tz: Annotated[str, typer.Option(help="Zone of the files' wall-clock times")] = "Europe/Madrid",
    start_date: Annotated[Optional[str], typer.Option(help="First local day of the replay, YYYY-MM-DD (default: "
                                                      "the data set's days ending yesterday)")] = None,
    speed: Annotated[Optional[float], typer.Option(help="Simulated seconds per wall second")] = None,
    as_fast_as_possible: Annotated[bool, typer.Option("--as-fast-as-possible",
                                                      help="Publish without pacing (the default)")] = False,
    registry_out: Annotated[Optional[Path], typer.Option(help="Write the home's registry YAML (household, "
                                                         "sensors with opaque ids) here")] = None,
    register: Annotated[bool, typer.Option(help="Load the home and its sensors into the registry before "
                                           "publishing")] = True,
) -> None:
    """Publish the Ordóñez ADL home as zigbee2mqtt messages (one home; each active interval gives the
    messages its sensor would send at its start and end); returns once the broker has acknowledged
    all of them."""
    import tempfile

    from vigie.registry import RegistryError, load_registry_file
    from vigie.simulators.ordonez import load_ordonez
    from vigie.simulators.publish import publish_messages
    from vigie.simulators.replay_ordonez import data_dir_of, plan_replay, write_registry

    if speed is not None and as_fast_as_possible:
        raise typer.BadParameter("give --speed or --as-fast-as-possible, not both", param_hint="--speed")
    settings = _settings()
    try:
        replay = plan_replay(load_ordonez(data_dir_of(source), tz), home,
                             _parse_day(start_date, "--start-date") if start_date else None)
    except (ValueError, OSError) as exc:
        typer.echo(f"replay ordonez: {exc}", err=True)
        raise typer.Exit(2)
    if registry_out:
        write_registry(replay, registry_out)
    if register:
        ctx = _context(ensure_influx=False)
        with tempfile.TemporaryDirectory() as tmp:
            path = registry_out or Path(tmp) / "ordonez.yaml"
            if not registry_out:
                write_registry(replay, path)
            try:
                with ctx.sessions() as s:
                    load_registry_file(s, path, default_commune=settings.commune)
            except RegistryError as exc:
                typer.echo(f"replay ordonez: {exc}", err=True)
                raise typer.Exit(2)
    total = len(replay.messages)
    typer.echo(f"publishing {total} zigbee2mqtt messages of home {home}, {replay.start}..{replay.end}, "
               f"to {settings.mqtt_url}", err=True)
    show = _progress("replay ordonez")
    n = publish_messages(replay.messages, settings.mqtt_url, speed=speed,
                         progress=lambda sent, acked: show(sent, acked, total), **_publisher_credentials(settings))
    typer.echo(json.dumps({"published": n, "home": home, "sensors": len(replay.sensors), "events": replay.events,
                           "start": replay.start.isoformat(), "end": replay.end.isoformat()}))



@app.command("export-person")
def export_person_cmd(
    person_id: Annotated[str, typer.Argument(help="The person's opaque id in the registry")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the JSON here (mode 0600) "
                                                "instead of standard output")] = None,
) -> None:
    """Right of access (GDPR art. 15/20): everything Vigie holds about one person, as JSON."""
    import os

    from vigie.privacy import UnknownPerson, export_person
    from vigie.store import StoreError

    ctx = _context()
    try:
        with ctx.sessions() as s:
            doc = export_person(s, ctx.store, person_id)
    except UnknownPerson:
        typer.echo(f"no person {person_id!r} in the registry", err=True)
        raise typer.Exit(4)
    except StoreError as exc:
        typer.echo(f"InfluxDB error: {exc}", err=True)
        raise typer.Exit(3)
    text = json.dumps(doc, ensure_ascii=False, indent=1, default=str)
    if out is None:
        typer.echo(text)
        return
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    typer.echo(f"written to {out}", err=True)


@app.command("erase-person")
def erase_person_cmd(
    person_id: Annotated[str, typer.Argument(help="The person's opaque id in the registry")],
    keep_meter_data: Annotated[bool, typer.Option(help="Keep the meter series, home sensor events and alerts "
                                                  "of households the person was the last resident of")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only print what would be erased")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Right to erasure (GDPR art. 17): remove one person and the data only they relate to
    (docs/data-protection.md says exactly what goes and what stays)."""
    from vigie.privacy import UnknownPerson, erase_person
    from vigie.store import StoreError

    ctx = _context()
    try:
        with ctx.sessions() as s:
            plan = erase_person(s, ctx.store, person_id, keep_meter_data=keep_meter_data, dry_run=True)
            if not dry_run and not yes:
                typer.echo(json.dumps(dataclasses.asdict(plan)), err=True)
                typer.confirm(f"erase person {person_id} as shown above?", abort=True)
            report = plan if dry_run else erase_person(s, ctx.store, person_id, keep_meter_data=keep_meter_data)
    except UnknownPerson:
        typer.echo(f"no person {person_id!r} in the registry", err=True)
        raise typer.Exit(4)
    except StoreError as exc:
        typer.echo(f"InfluxDB error, nothing erased in the registry: {exc}", err=True)
        raise typer.Exit(3)
    typer.echo(json.dumps(dataclasses.asdict(report)))


def _history_grant(household_id: str, person_id: str, granted: bool) -> None:
    from vigie.registry import set_history_grant

    ctx = _context(ensure_influx=False)
    try:
        with ctx.sessions() as s:
            set_history_grant(s, household_id, person_id, granted)
    except LookupError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(4)
    typer.echo(json.dumps({"household_id": household_id, "person_id": person_id, "history_granted": granted}))


@registry_app.command("grant-history")
def registry_grant_history(household_id: str, person_id: str) -> None:
    """Let caregiver PERSON_ID read the consumption history of HOUSEHOLD_ID through the API."""
    _history_grant(household_id, person_id, True)


@registry_app.command("revoke-history")
def registry_revoke_history(household_id: str, person_id: str) -> None:
    """Stop caregiver PERSON_ID reading the consumption history of HOUSEHOLD_ID."""
    _history_grant(household_id, person_id, False)


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="staff, resident, caregiver or grafana")],
    person: Annotated[Optional[str], typer.Option(help="Person id (resident, caregiver: in the registry; "
                                                  "staff: the staff member's id)")] = None,
    commune: Annotated[Optional[str], typer.Option(help="Commune (staff, grafana; default: VIGIE_COMMUNE)")] = None,
    label: Annotated[Optional[str], typer.Option(help="What the key is for")] = None,
    expires_days: Annotated[Optional[float], typer.Option(min=0, help="Expire after N days")] = None,
) -> None:
    """Create an API key and print its token on standard output — the only time it is shown."""
    from datetime import timedelta, timezone

    from vigie.auth import COMMUNE_ROLES, Role, create_key

    ctx = _context(ensure_influx=False)
    try:
        role_ = Role(role)
    except ValueError:
        raise typer.BadParameter(f"expected one of {', '.join(Role)}", param_hint="--role")
    if role_ in COMMUNE_ROLES:
        commune = commune or ctx.settings.commune
    expires_at = datetime.now(timezone.utc) + timedelta(days=expires_days) if expires_days else None
    try:
        with ctx.sessions() as s:
            issued = create_key(s, role_, person_id=person, commune=commune, label=label, expires_at=expires_at)
    except ValueError as exc:
        typer.echo(f"keys create: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(f"key {issued.key_id} ({role_}) created; store this token now, it is not shown again:", err=True)
    typer.echo(issued.token)


@keys_app.command("list")
def keys_list(as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False) -> None:
    """Every API key with its principal and dates (never a secret)."""
    from vigie.auth import list_keys

    ctx = _context(ensure_influx=False)
    cols = ("key_id", "role", "person_id", "commune", "label", "created_at", "expires_at", "revoked_at",
            "last_used_at", "replaced_by")
    with ctx.sessions() as s:
        rows = [{c: getattr(k, c) for c in cols} for k in list_keys(s)]
    for row in rows:
        if as_json:
            typer.echo(json.dumps(row, default=str))
        else:
            typer.echo("  ".join(f"{c}={row[c]}" for c in cols if row[c] is not None))


@keys_app.command("rotate")
def keys_rotate(
    key_id: str,
    grace_hours: Annotated[float, typer.Option(min=0, help="Keep the old key valid this long")] = 0.0,
) -> None:
    """Replace KEY_ID by a new key for the same principal; print the new token (shown once)."""
    from datetime import timedelta

    from vigie.auth import UnknownKeyError, rotate_key

    ctx = _context(ensure_influx=False)
    try:
        with ctx.sessions() as s:
            issued = rotate_key(s, key_id, grace=timedelta(hours=grace_hours))
    except UnknownKeyError as exc:
        typer.echo(f"keys rotate: {exc}", err=True)
        raise typer.Exit(4)
    except ValueError as exc:
        typer.echo(f"keys rotate: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(f"key {issued.key_id} replaces {key_id} (revoked in {grace_hours:g} h); "
               "store this token now, it is not shown again:", err=True)
    typer.echo(issued.token)


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke KEY_ID now: the API refuses it from the next request on."""
    from vigie.auth import UnknownKeyError, revoke_key

    ctx = _context(ensure_influx=False)
    try:
        with ctx.sessions() as s:
            revoke_key(s, key_id)
    except UnknownKeyError as exc:
        typer.echo(f"keys revoke: {exc}", err=True)
        raise typer.Exit(4)
    typer.echo(f"key {key_id} revoked", err=True)


@app.command("audit")
def audit_cmd(
    household: Annotated[Optional[str], typer.Option(help="Only events about this household")] = None,
    person: Annotated[Optional[str], typer.Option(help="Only events by this person or about their homes")] = None,
    since: Annotated[Optional[str], typer.Option(help="Only events from this day on, YYYY-MM-DD (UTC)")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most N events")] = 1000,
) -> None:
    """Print the audit log (who read which household's data, who acknowledged what) as JSON lines."""
    from datetime import timezone

    from vigie.audit import read_events

    start = None
    if since:
        start = datetime.combine(_parse_day(since, "--since"), datetime.min.time(), tzinfo=timezone.utc)
    ctx = _context(ensure_influx=False)
    cols = ("at", "key_id", "role", "person_id", "action", "via", "household_id", "meter_id", "alert_id")
    with ctx.sessions() as s:
        events = read_events(s, household_id=household, person_id=person, since=start, limit=limit)
        for e in events:
            typer.echo(json.dumps({c: getattr(e, c) for c in cols}, default=str))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database of VIGIE_DATABASE_URL to the current schema and print its revision
    (every start of Vigie does this too; here it can be run, and watched, before a deployment)."""
    from vigie.db import make_engine
    from vigie.migrations import SchemaVersionError, current_revision

    settings = _settings()
    _setup_logging()
    try:
        engine = make_engine(settings.database_url)
    except SchemaVersionError as exc:
        typer.echo(f"db upgrade: {exc}", err=True)
        raise typer.Exit(4)
    typer.echo(current_revision(engine))
    engine.dispose()


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision of the database of VIGIE_DATABASE_URL without changing anything;
    exit status 1 when it is not the newest this version knows (``vigie db upgrade`` would run)."""
    from sqlalchemy import create_engine

    from vigie.migrations import current_revision, head

    engine = create_engine(_settings().database_url)
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    newest = head()
    if current == newest:
        typer.echo(f"{current} (head)")
        return
    typer.echo(f"{current or 'none (empty, or created before migrations)'}; head is {newest}")
    raise typer.Exit(1)


if __name__ == "__main__":
    app()

"""The ``vigie`` command line (Typer). ``vigie --help`` lists the commands."""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(help="Vigie: telemetry and alerting for municipalities.\n\n"
                       "Settings come from VIGIE_* environment variables, a .env file and the YAML file named by "
                       "VIGIE_CONFIG (docs/configuration.md). Start with `vigie check`, then `vigie serve`. "
                       "Each command's own help: `vigie COMMAND --help`.",
                  no_args_is_help=True, pretty_exceptions_enable=False,
                  # Markdown: help paragraphs are re-flowed (docstrings wrap at 110 columns) and `code` shows.
                  rich_markup_mode="markdown")
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
influx_app = typer.Typer(help="The InfluxDB database and its retention policies (docs/security.md).",
                         no_args_is_help=True)
app.add_typer(influx_app, name="influx")

log = logging.getLogger("vigie")


def _setup_logging(verbose: bool = False) -> None:
    from vigie.config import get_settings
    from vigie.logs import setup_logging

    try:
        log_format = get_settings().log_format
    except Exception:  # the command's own _settings() reports the configuration error next
        log_format = "text"
    setup_logging(verbose, log_format)


def _settings():
    """The settings; on a configuration error, prints each bad setting with its fix and exits 2."""
    from vigie.config import get_settings
    from vigie.config_errors import explain

    try:
        return get_settings()
    except (ValueError, OSError) as exc:   # pydantic's ValidationError is a ValueError
        for problem in explain(exc):
            typer.echo(f"configuration error: {problem}", err=True)
        raise typer.Exit(2)


def _context(**kw):
    """The stores of the settings; on a store, database or registry-file error, says which setting
    to look at (``vigie check`` tells more) and exits 3 (InfluxDB), 4 (database) or 2 (registry file)."""
    from sqlalchemy.exc import SQLAlchemyError

    from vigie.context import AppContext
    from vigie.migrations import SchemaVersionError
    from vigie.registry import RegistryError
    from vigie.store import StoreError

    from vigie.logs import redact

    settings = _settings()
    try:
        return AppContext.create(settings, **kw)
    except StoreError as exc:
        typer.echo(redact(f"InfluxDB error (VIGIE_INFLUX_URL={settings.influx_url}): {exc}"), err=True)
        raise typer.Exit(3)
    except (SchemaVersionError, SQLAlchemyError) as exc:
        typer.echo(f"database error (VIGIE_DATABASE_URL={redact(settings.database_url)}): "
                   f"{redact(str(exc).splitlines()[0])}\n  fix: check VIGIE_DATABASE_URL and that the database "
                   "answers; `vigie check` tests it", err=True)
        raise typer.Exit(4)
    except (RegistryError, OSError) as exc:
        typer.echo(f"registry error (VIGIE_REGISTRY_FILE={settings.registry_file}): {exc}\n  fix: correct the "
                   "file (docs/registry.md) or unset VIGIE_REGISTRY_FILE", err=True)
        raise typer.Exit(2)


def _redact(text: str) -> str:
    """``text`` with URL credentials, addresses and tokens masked (:func:`vigie.logs.redact`)."""
    from vigie.logs import redact

    return redact(text)


def _parse_day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"expected YYYY-MM-DD, got {value!r}", param_hint=name)


@app.command()
def serve(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at DEBUG level")] = False) -> None:
    """Run ingest, the daily J+1 scheduler, the alert router with delivery, and the HTTP API."""
    _setup_logging(verbose)
    from vigie.service import run_service

    ctx = _context()
    _ingestor(ctx)   # the settings checked before anything starts; run_service builds its own
    run_service(ctx)


def _ingestor(ctx):
    """The ingestor of ``ctx``'s settings, not started; exit 2 with the setting and the fix when it
    cannot be built (unknown decoder in a topic setting, a filter without its decoder, MQTT 3.1.1
    with workers…)."""
    from vigie.ingest.service import Ingestor

    try:
        return Ingestor(ctx.settings, ctx.store, ctx.sessions)
    except ValueError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2)


@app.command()
def demo(
    days: Annotated[int, typer.Option(min=3, help="Local days simulated (ending yesterday; the homes also "
                                      "get today until now)")] = 7,
    meters: Annotated[int, typer.Option(min=12, help="Water meters (two get a fault)")] = 30,
    homes: Annotated[int, typer.Option(min=1, help="Assisted-living homes (the first one's resident falls)")] = 2,
    rooms: Annotated[int, typer.Option(min=2, help="Town-hall heating rooms, 8 per building (two get a "
                                       "fault)")] = 8,
    directory: Annotated[Path, typer.Option("--dir", help="Demo directory: registry, spool, outbox, logs, "
                                            "summary.json (a previous run's files there are replaced)")]
    = Path("vigie-demo"),
    port: Annotated[Optional[int], typer.Option(min=1, max=65535, help="API port (default: a free one)")] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the simulated fleets")] = 0,
    keep_running: Annotated[bool, typer.Option("--keep-running/--exit", help="After the summary, keep ingest, "
                                               "the API and the scheduler running until Ctrl-C, or exit")] = True,
) -> None:
    """Run the whole chain on this machine with simulated devices: broker, store, simulators with
    injected faults, ingest, analytics, alerts, the API.

    Uses the broker, InfluxDB and SMTP relay the settings name; for each one left unset it uses
    Vigie's embedded broker (amqtt, MQTT 3.1.1), the embedded store, and a local outbox of .eml
    files in DIR/outbox. The registry is a SQLite file in DIR. Prints progress, every alert raised
    against the faults injected, the API's URL and a demo staff key; writes DIR/summary.json.
    Exit code 0, or 1 when an injected fault raised no alert, 2 when the demo could not run.
    """
    from rich.console import Console

    from vigie.demo import DemoError, DemoOptions, run_demo

    settings = _settings()
    console = Console(highlight=False)
    try:
        options = DemoOptions(directory=directory, days=days, meters=meters, homes=homes, rooms=rooms, seed=seed,
                              port=port, keep_running=keep_running)
        report = run_demo(options, settings, console)
    except (DemoError, ValueError) as exc:
        typer.echo(f"demo: {exc}", err=True)
        raise typer.Exit(2)
    if report.missed:
        raise typer.Exit(1)


@app.command()
def ingest(
    wait_idle: Annotated[bool, typer.Option("--wait-idle", help="Exit once the broker has delivered "
                                            "everything queued and every reading is in InfluxDB")] = False,
    timeout: Annotated[float, typer.Option(help="With --wait-idle: give up after this many seconds")] = 600.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at DEBUG level")] = False,
) -> None:
    """Run the MQTT ingestor alone (durable session: it picks up what was published while it was away)."""
    _setup_logging(verbose)
    ing = _ingestor(_context())
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
        typer.echo(_redact(f"InfluxDB error (VIGIE_INFLUX_URL={ctx.settings.influx_url}): {exc}"), err=True)
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
        typer.echo(_redact(f"InfluxDB error (VIGIE_INFLUX_URL={ctx.settings.influx_url}): {exc}"), err=True)
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
def heating(
    from_: Annotated[str, typer.Option("--from", help="First local day, YYYY-MM-DD")],
    to: Annotated[str, typer.Option("--to", help="Last local day (inclusive), YYYY-MM-DD")],
    occupancy: Annotated[Optional[str], typer.Option(
        "--occupancy", help="Rooms' occupancy: 'schedule' (registry schedules, holidays, closures) or "
                            "'observed' (the rooms' own occupancy reports); default VIGIE_HEATING_OCCUPANCY")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object: findings, room_days, "
                                          "building_days")] = False,
) -> None:
    """Run the heating analytics over a stored period (the daily job's code path: the
    VIGIE_HEATING_HISTORY_DAYS before it feed the energy trend) and list findings and daily
    energy per room. Reads only: no finding is recorded, nobody is told.

    Findings: ``building``, ``room`` (empty for a building's energy trend), ``kind``
    (window_open_heating, unoccupied_heating, setpoint_above_comfort, cannot_reach_setpoint,
    energy_trend), ``start``/``end`` (ISO 8601 UTC) and ``evidence`` (units in the key names).
    Daily energy: ``energy_kwh`` per room and local day with the day's heating degree-days (DJU,
    base 18 °C), ``kwh_per_hdd``, ``coverage`` and the energy ``method`` (meter, power, valve,
    none). Exit code 0 whatever was found, 3 when InfluxDB cannot be read.
    """
    _setup_logging()
    first, last = _parse_day(from_, "--from"), _parse_day(to, "--to")
    if last < first:
        raise typer.BadParameter("--to is before --from")
    if occupancy is not None and occupancy not in ("schedule", "observed"):
        raise typer.BadParameter(f"expected schedule or observed, got {occupancy!r}", param_hint="--occupancy")
    from vigie.heating_jobs import heating_pass
    from vigie.store import StoreError

    ctx = _context(ensure_influx=False)   # reads only: never creates a database
    try:
        run = heating_pass(ctx, first, last, occupancy=occupancy)
    except StoreError as exc:
        typer.echo(_redact(f"InfluxDB error (VIGIE_INFLUX_URL={ctx.settings.influx_url}): {exc}"), err=True)
        raise typer.Exit(3)
    findings, room_days = run.findings(), run.room_days()

    def num(x):
        return None if x is None or x != x else round(float(x), 3)

    if as_json:
        typer.echo(json.dumps({
            "from": first.isoformat(), "to": last.isoformat(), "occupancy": run.occupancy,
            "findings": [{"building": f.building, "room": f.room, "kind": str(f.kind), "start": f.start.isoformat(),
                          "end": f.end.isoformat(), "evidence": f.evidence} for f in findings],
            "room_days": [{"building": d.building, "room": d.room, "day": d.day.isoformat(),
                           "energy_kwh": num(d.energy_kwh), "hdd": num(d.hdd), "kwh_per_hdd": num(d.kwh_per_hdd),
                           "coverage": num(d.coverage), "method": d.method} for d in room_days],
            "building_days": [{"building": d.building, "day": d.day.isoformat(), "energy_kwh": num(d.energy_kwh),
                               "hdd": num(d.hdd), "kwh_per_hdd": num(d.kwh_per_hdd), "rooms": d.rooms}
                              for d in run.building_days()],
        }, ensure_ascii=False))
        return
    if not len(run.layout.rooms):
        typer.echo("no heating room in the registry (buildings: in the registry file, docs/registry.md)")
        return
    tz = ctx.tz

    def local(t):
        return t.astimezone(tz).strftime("%Y-%m-%d %H:%M")

    typer.echo(f"findings {first}..{last} (occupancy: {run.occupancy}): {len(findings) or 'none'}")
    if findings:
        typer.echo(f"{'building':12}  {'room':16}  {'kind':22}  {'start':16}  {'end':16}  evidence")
    for f in findings:
        evidence = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in f.evidence.items())
        typer.echo(f"{f.building:12}  {f.room or '-':16}  {f.kind!s:22}  {local(f.start):16}  {local(f.end):16}  "
                   f"{evidence}")
    typer.echo("")
    typer.echo(f"daily energy per room ({ctx.settings.timezone} days; DJU base 18 °C)")
    typer.echo(f"{'day':10}  {'building':12}  {'room':16}  {'kWh':>8}  {'DJU':>5}  {'kWh/DJU':>7}  {'cover':>5}  method")
    for d in room_days:
        kwh = "" if d.energy_kwh != d.energy_kwh else f"{d.energy_kwh:8.1f}"
        hdd = "" if d.hdd != d.hdd else f"{d.hdd:5.1f}"
        ratio = "" if d.kwh_per_hdd is None else f"{d.kwh_per_hdd:7.2f}"
        typer.echo(f"{d.day!s:10}  {d.building:12}  {d.room:16}  {kwh:>8}  {hdd:>5}  {ratio:>7}  "
                   f"{d.coverage:5.0%}  {d.method}")


@app.command()
def devices(
    silent: Annotated[bool, typer.Option("--silent", help="Only devices gone or going quiet: silent and "
                                         "low-battery ones")] = False,
    low_battery: Annotated[bool, typer.Option("--low-battery", help="Only low-battery devices")] = False,
    family: Annotated[Optional[list[str]], typer.Option("--family", help="Only this family: water, home or "
                                                        "heating (repeatable)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array")] = False,
) -> None:
    """List device problems of every family now: silent devices (no message for their expected
    interval × VIGIE_DEVICE_SILENT_FACTOR), low batteries, drifting clocks (docs/devices.md).

    Without a filter every kind is listed; ``--silent`` lists the devices staff must visit (silent
    and low battery); ``--low-battery`` only low batteries. ``--json``: one array of objects with
    ``family``, ``device``, ``kind``, ``since`` (ISO 8601 UTC, null for a device never seen),
    ``commune``, ``household``, ``building``, ``room`` (registry ids, null when not applicable) and
    ``evidence``. Ids only: no name, address or friendly name. Exit code 0 whatever was found.
    """
    _setup_logging()
    from vigie.analytics.devices import DeviceFamily, DeviceHealthKind, DeviceHealthParams, device_health
    from vigie.store import StoreError

    families = set(family or [])
    unknown = families - {str(f) for f in DeviceFamily}
    if unknown:
        raise typer.BadParameter(f"expected water, home or heating, got {', '.join(sorted(unknown))}",
                                 param_hint="--family")
    kinds = {str(k) for k in DeviceHealthKind}
    if silent or low_battery:
        kinds = ({DeviceHealthKind.SILENT, DeviceHealthKind.LOW_BATTERY} if silent else set()) | (
            {DeviceHealthKind.LOW_BATTERY} if low_battery else set())
    ctx = _context(ensure_influx=False)   # reads only: never creates a database
    try:
        found = device_health(ctx.store, ctx.sessions, params=DeviceHealthParams.from_settings(ctx.settings))
    except StoreError as exc:
        typer.echo(_redact(f"InfluxDB error (VIGIE_INFLUX_URL={ctx.settings.influx_url}): {exc}"), err=True)
        raise typer.Exit(3)
    shown = [h for h in found if h.kind in kinds and (not families or h.family in families)]
    if as_json:
        typer.echo(json.dumps([h.to_dict() for h in shown], ensure_ascii=False))
        return
    if not shown:
        typer.echo(f"no device problem ({', '.join(sorted(str(k) for k in kinds))})")
        return
    tz = ctx.settings.timezone
    typer.echo(f"{'family':8}  {'device':24}  {'kind':11}  {'since (' + tz + ')':20}  {'where':28}  evidence")
    for h in shown:
        since = h.since.astimezone(ctx.tz).strftime("%Y-%m-%d %H:%M:%S") if h.since else "never seen"
        where = h.household or "/".join(x for x in (h.building, h.room) if x) or "-"
        evidence = " ".join(f"{k}={v}" for k, v in h.evidence.items() if v is not None)
        typer.echo(f"{h.family!s:8}  {h.device:24}  {h.kind!s:11}  {since:20}  {where:28}  {evidence}")


@app.command()
def check(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object: ok, and checks (name, status, "
                                          "detail, fix, seconds)")] = False,
    only: Annotated[Optional[list[str]], typer.Option("--only", help="Run only this check (repeatable): config, "
                                                      "database, registry, broker, broker-simulator, store, smtp, "
                                                      "channels, data-dir")] = None,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds each network step waits at most")] = 5.0,
) -> None:
    """Check the configuration and every dependency with the configured credentials, changing and
    sending nothing: the relational database, the registry, the MQTT broker (connect, subscribe
    rights), InfluxDB (database, retention policies, write rights), the SMTP server, the persons'
    Apprise channels and the data directory. Each is ok, warn, fail or skip, with a fix.

    Exit code 0 when nothing failed (warnings allowed), 1 when a check failed, 2 when the settings
    cannot be read (each bad setting is reported as a failed ``config`` check).
    """
    from vigie.checks import CHECKS, Check, CheckReport, Status, run_checks
    from vigie.config import get_settings
    from vigie.config_errors import explain

    unknown = set(only or []) - set(CHECKS)
    if unknown:
        raise typer.BadParameter(f"unknown check(s) {', '.join(sorted(unknown))}; known: {', '.join(CHECKS)}",
                                 param_hint="--only")
    try:
        settings = get_settings()
    except (ValueError, OSError) as exc:
        report = CheckReport([Check("config", Status.FAIL, f"{p.setting}"
                                    + (f"={p.value!r}" if p.value is not None else "")
                                    + (f" (set in {p.source})" if p.source else "") + f": {p.problem}", p.fix)
                              for p in explain(exc)])
        _print_checks(report, as_json)
        raise typer.Exit(2)
    report = run_checks(settings, only=set(only) if only else None, timeout_s=timeout)
    _print_checks(report, as_json)
    if not report.ok:
        raise typer.Exit(1)


def _print_checks(report, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    for c in report.checks:
        typer.echo(f"{str(c.status).upper() if c.status == 'fail' else str(c.status):5} {c.name:17} {c.detail}")
        if c.fix:
            typer.echo(f"{'':5} {'':17} fix: {c.fix}")
    counts = {s: sum(c.status == s for c in report.checks) for s in ("ok", "warn", "fail", "skip")}
    typer.echo(", ".join(f"{n} {s}" for s, n in counts.items() if n) + (": all good" if report.ok else ""))


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
def registry_load(path: Annotated[Path, typer.Argument(help="Registry file: YAML (.yaml, .yml; households, "
                                                      "sensors, buildings, LoRaWAN devices) or CSV (.csv), "
                                                      "docs/registry.md")]) -> None:
    """Load (upsert) a YAML or CSV registry file into the database."""
    from vigie.registry import RegistryError, load_registry_file

    ctx = _context(ensure_influx=False)
    try:
        with ctx.sessions() as s:
            counts = load_registry_file(s, path, default_commune=ctx.settings.commune,
                                        heating_comfort_c=ctx.settings.heating_comfort_c,
                                        heating_setback_c=ctx.settings.heating_setback_c)
    except (RegistryError, OSError) as exc:
        typer.echo(f"registry error: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(json.dumps(counts))


def _publisher_credentials(settings) -> dict:
    """Broker credentials of the simulator and replays: their own test-gateway user, never the
    service account's (which may only subscribe); and the MQTT version (VIGIE_MQTT_PROTOCOL)."""
    pw = settings.simulator_mqtt_password
    return {"username": settings.simulator_mqtt_username, "password": pw.get_secret_value() if pw else None,
            "ca_file": settings.mqtt_ca_file, "protocol": settings.mqtt_protocol_version}


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


def _check_speed(speed: float | None) -> None:
    """Refuse a pace of 0 or less before anything is simulated or published."""
    if speed is not None and not speed > 0:
        raise typer.BadParameter(f"{speed:g}: expected > 0 simulated seconds per wall second "
                                 "(or leave it out: as fast as possible)", param_hint="--speed")


def _topic_roots(messages, roots: set[str]):
    """``messages`` as they are published, adding each one's first topic level (``zigbee2mqtt/#``)
    to ``roots``: what to name when the broker refuses them."""
    for m in messages:
        roots.add(m.topic.split("/", 1)[0] + "/#")
        yield m


def _publish_failed(command: str, exc: Exception, settings, topics) -> None:
    """One line on stderr for a :class:`~vigie.simulators.publish.PublishError`, then exit 1; a
    refusal names the publishing user and topics and the likely fix."""
    text = str(exc)
    if "refused" in text:
        user = settings.simulator_mqtt_username or "(from VIGIE_MQTT_URL)"
        text = (f"the broker refused user {user} on {', '.join(sorted(topics)) or 'these topics'} "
                f"({text.split(': check', 1)[0]}); hint: `vigie broker credentials` — the broker's ACL may "
                "predate these topics")
    typer.echo(f"{command}: {text}", err=True)
    raise typer.Exit(1)


def _publish_all(command: str, messages, total: int, settings, speed: float | None) -> int:
    """Publish ``messages`` (records with ``topic``) as the simulator's user with progress on stderr;
    how many were acknowledged. A refusal or a lost broker ends the command (exit 1, one line)."""
    from vigie.simulators.publish import PublishError, publish_messages

    show = _progress(command)
    topics: set[str] = set()
    try:
        return publish_messages(_topic_roots(messages, topics), settings.mqtt_url, speed=speed,
                                progress=lambda sent, acked: show(sent, acked, total),
                                **_publisher_credentials(settings))
    except PublishError as exc:
        _publish_failed(command, exc, settings, topics)


@broker_app.command("credentials")
def broker_credentials(
    out: Annotated[Path, typer.Option("--out", help="Directory of the Mosquitto passwd and acl files")],
    rotate: Annotated[list[str], typer.Option(help="Give this credential (gateway, meter, service or "
                                              "simulator user) a new password (repeatable)")] = [],
    simulator: Annotated[bool, typer.Option(help="Also a test publisher allowed on every water, home, heating "
                                            "and LoRaWAN topic (VIGIE_SIMULATOR_MQTT_USERNAME); for testing "
                                            "only")] = False,
    secrets: Annotated[Optional[Path], typer.Option(help="Append new passwords here (0600; default "
                                                    "OUT/new-credentials)")] = None,
) -> None:
    """Write Mosquitto's password file (hashed by mosquitto_passwd) and ACL from the registry: one
    credential per gateway or gateway-less meter, one per home's zigbee2mqtt bridge (user = the
    household id), one per building's heating bridge (user = the building id), one per LoRaWAN
    network server decoder when LoRaWAN devices are registered (user = lorawan-<decoder>); the
    service account (VIGIE_MQTT_USERNAME) may subscribe. Existing passwords are kept; new ones are
    written once to the secrets file. Reload Mosquitto afterwards (SIGHUP)."""
    from sqlalchemy import select

    from vigie.broker_auth import (DEFAULT_SIMULATOR_USER, BrokerAuthError, HeatingRoute, MeterRoute, SensorRoute,
                                   plan_credentials, write_broker_files)
    from vigie.heating_registry import HeatingDevice, LorawanDevice
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
        heating = [HeatingRoute(*row) for row in s.execute(select(HeatingDevice.building_id, HeatingDevice.friendly_name)
                                                           .where(HeatingDevice.friendly_name.is_not(None)))]
        # Heating devices with a dev_eui are rows of lorawan_devices too.
        lorawan = s.execute(select(LorawanDevice.dev_eui).limit(1)).first() is not None
    try:
        creds = plan_credentials(meters, settings.topic_decoders(), settings.mqtt_username,
                                 (settings.simulator_mqtt_username or DEFAULT_SIMULATOR_USER) if simulator else None,
                                 sensors=sensors, home_topic_decoders=settings.home_topic_decoders(),
                                 heating=heating, heating_topic_decoders=settings.heating_topic_decoders(),
                                 lorawan_topic_decoders=settings.lorawan_topic_decoders(), lorawan_devices=lorawan)
        report = write_broker_files(out, creds, rotate=rotate, secrets_path=secrets)
    except (BrokerAuthError, OSError) as exc:
        typer.echo(f"broker credentials: {exc}", err=True)
        raise typer.Exit(2)
    if report.secrets:
        typer.echo(f"new passwords in {report.secrets} (mode 0600): provision them, then delete the file", err=True)
    typer.echo(json.dumps(dataclasses.asdict(report), default=str))


@simulate_app.command("water")
def simulate_water(
    meters: Annotated[Optional[int], typer.Option(min=1, help="Number of meters [default: 100; 500 with "
                                                  "--scenario e2e]", show_default=False)] = None,
    days: Annotated[int, typer.Option(min=1, help="Number of local days")] = 7,
    start: Annotated[Optional[str], typer.Option(help="First local day, YYYY-MM-DD (default: the "
                                                 "DAYS days ending yesterday)")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same fleet)")] = 0,
    leak: Annotated[list[str], typer.Option(help="METER:RATE:START — leak of RATE L/h on the meter at "
                                            "fleet position METER from START (repeatable)")] = [],
    gap: Annotated[list[str], typer.Option(help="METER:START:HOURS — no readings (repeatable)")] = [],
    replace: Annotated[list[str], typer.Option(help="METER:AT — meter replaced, index restarts near 0")] = [],
    duplicates: Annotated[float, typer.Option(help="Share of meters (0–1) with one message sent twice")] = 0.0,
    scenario: Annotated[Optional[str], typer.Option(help="'e2e': the end-to-end test's fleet (500 meters or "
                                                    "--meters, 30 days, 6 leaks, gaps, a replacement, "
                                                    "duplicates)")] = None,
    speed: Annotated[Optional[float], typer.Option(help="Simulated seconds per wall second "
                                                   "(default: as fast as possible)")] = None,
    ground_truth: Annotated[Optional[Path], typer.Option(help="Write the injected faults here (JSON)")] = None,
    registry: Annotated[Optional[Path], typer.Option(help="Write a registry YAML for the simulated fleet")] = None,
    load_registry: Annotated[bool, typer.Option(help="Also load that registry into the database")] = True,
    format_: Annotated[str, typer.Option("--format", help="wmbusmeters (gateway JSON), tts_v3 (The Things Stack "
                                         "v3 uplinks) or chirpstack_v4 (ChirpStack v4 up events): LoRaWAN formats "
                                         "carry Axioma Qalcosonic W1 frames, and --registry gets a lorawan: "
                                         "section")] = "wmbusmeters",
) -> None:
    """Publish a simulated water-meter fleet over MQTT (QoS 1): wmbusmeters JSON, or LoRaWAN
    network-server uplinks (--format)."""
    from vigie.simulators.lorawan import FORMATS, lorawan_messages
    from vigie.simulators.publish import PublishError, publish_messages, publish_readings
    from vigie.simulators.water import (Duplicates, WaterSimConfig, e2e_scenario, parse_gap_spec,
                                        parse_leak_spec, parse_replacement_spec, simulate, write_registry)

    if format_ not in FORMATS:
        raise typer.BadParameter(f"expected one of {', '.join(FORMATS)}", param_hint="--format")
    _check_speed(speed)
    settings = _settings()
    try:
        if scenario == "e2e":
            cfg = e2e_scenario(seed, **({"start": _parse_day(start, "--start")} if start else {}),
                               **({"meters": meters} if meters else {}))
        elif scenario is not None:
            raise typer.BadParameter(f"unknown scenario {scenario!r} (known: e2e)", param_hint="--scenario")
        else:
            faults = ([parse_leak_spec(x) for x in leak] + [parse_gap_spec(x) for x in gap]
                      + [parse_replacement_spec(x) for x in replace])
            if duplicates:
                faults.append(Duplicates(count=1, share=duplicates))
            cfg = WaterSimConfig(meters=meters or 100, days=days, seed=seed, faults=faults,
                                 start=_parse_day(start, "--start") if start else None)
        result = simulate(cfg)
    except ValueError as exc:
        typer.echo(f"simulate water: {exc}", err=True)
        raise typer.Exit(2)
    if ground_truth:
        result.write_ground_truth(ground_truth)
    if registry:
        write_registry(result, registry, lorawan=format_ != "wmbusmeters")
        if load_registry:
            registry_load(registry)
    total = len(result.publish_order)
    typer.echo(f"publishing {total} readings of {cfg.meters} meters over {cfg.days} days as {format_} to "
               f"{settings.mqtt_url}", err=True)
    show = _progress("simulate water")
    options = dict(speed=speed, progress=lambda sent, acked: show(sent, acked, total),
                   **_publisher_credentials(settings))
    topics: set[str] = set()
    try:
        if format_ == "wmbusmeters":
            topics.update(f for f, _ in settings.topic_decoders())   # publish_readings' topics are these
            n = publish_readings(result.published(), settings.mqtt_url, **options)
        else:
            n = publish_messages(_topic_roots(lorawan_messages(result, format_), topics), settings.mqtt_url,
                                 **options)
    except PublishError as exc:
        _publish_failed("simulate water", exc, settings, topics)
    except ValueError as exc:
        typer.echo(f"simulate water: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(json.dumps({"published": n, "meters": cfg.meters, "days": cfg.days, "format": format_,
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
    from vigie.simulators.home import (HomeSimConfig, parse_anomaly_spec, simulate_homes,
                                       write_home_registry)

    if speed is not None and as_fast_as_possible:
        raise typer.BadParameter("give --speed or --as-fast-as-possible, not both", param_hint="--speed")
    _check_speed(speed)
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
    n = _publish_all("simulate home", result.messages(), total, settings, speed)
    typer.echo(json.dumps({"published": n, "homes": homes, "days": days, "anomalies": len(result.truths)}))


@simulate_app.command("heating")
def simulate_heating_cmd(
    rooms: Annotated[int, typer.Option(min=1, help="Number of rooms (8 per building)")] = 24,
    days: Annotated[int, typer.Option(min=1, help="Number of local days")] = 14,
    start: Annotated[Optional[str], typer.Option(help="First local day, YYYY-MM-DD (default: the DAYS days "
                                                 "ending yesterday)")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same buildings and weather)")] = 0,
    fault: Annotated[list[str], typer.Option(help="window:ROOM:START,HOURS[,LOSS_FACTOR] | "
                                             "stuck-valve:ROOM:START[,HOURS[,MAX_PCT]] | "
                                             "schedule-ignored:ROOM:START[,HOURS] | "
                                             "setpoint-high:ROOM:START[,HOURS[,DELTA_C]] | "
                                             "battery:ROOM:AT[,DAYS[,TRV]] (ROOM = position 0…N-1 or id; "
                                             "times local ISO 8601; repeatable)")] = [],
    scenario: Annotated[Optional[str], typer.Option(help="'e2e': the end-to-end preset (one fault of each kind "
                                                    "on distinct rooms, the others clean)")] = None,
    speed: Annotated[Optional[float], typer.Option(help="Simulated seconds per wall second")] = None,
    as_fast_as_possible: Annotated[bool, typer.Option("--as-fast-as-possible",
                                                      help="Publish without pacing (the default)")] = False,
    truth: Annotated[Optional[Path], typer.Option(help="Write the injected faults here (JSON)")] = None,
    registry_out: Annotated[Optional[Path], typer.Option(help="Write the buildings' registry YAML (buildings:, "
                                                         "rooms, TRVs, outdoor sensors) here")] = None,
    load_registry: Annotated[bool, typer.Option(help="Also load that registry into the database before "
                                                "publishing")] = True,
) -> None:
    """Publish simulated town-hall heating (rooms, radiators, TRVs, outdoor sensors) as
    zigbee2mqtt messages over MQTT (QoS 1)."""
    from vigie.simulators.heating import (HeatingSimConfig, e2e_scenario, parse_fault_spec, simulate_heating,
                                          write_heating_registry)

    if speed is not None and as_fast_as_possible:
        raise typer.BadParameter("give --speed or --as-fast-as-possible, not both", param_hint="--speed")
    _check_speed(speed)
    settings = _settings()
    try:
        first = _parse_day(start, "--start") if start else None
        if scenario == "e2e":
            cfg = e2e_scenario(seed, **({"start": first} if first else {}), rooms=rooms, days=days)
        elif scenario is not None:
            raise typer.BadParameter(f"unknown scenario {scenario!r} (known: e2e)", param_hint="--scenario")
        else:
            cfg = HeatingSimConfig(rooms=rooms, days=days, start=first, seed=seed,
                                   faults=[parse_fault_spec(f) for f in fault])
        result = simulate_heating(cfg)
    except ValueError as exc:
        typer.echo(f"simulate heating: {exc}", err=True)
        raise typer.Exit(2)
    if truth:
        result.write_ground_truth(truth)
    if registry_out:
        write_heating_registry(result, registry_out, commune=settings.commune)
        if load_registry:
            registry_load(registry_out)
    total = len(result)
    typer.echo(f"publishing {total} zigbee2mqtt messages of {len(result.plan.rooms)} rooms "
               f"({result.plan.n_trv} TRVs) over {cfg.days} days to {settings.mqtt_url}", err=True)
    n = _publish_all("simulate heating", result.messages(), total, settings, speed)
    typer.echo(json.dumps({"published": n, "rooms": len(result.plan.rooms), "trvs": result.plan.n_trv,
                           "buildings": len(result.plan.buildings), "days": cfg.days, "faults": len(result.truths)}))


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


@replay_app.command("ou44")
def replay_ou44_cmd(
    data_dir: Annotated[Path, typer.Argument(metavar="DATA_DIR", help="The OU44 data set's directory (df_*.csv, "
                                             "areas.txt, radiators.txt…); read in place, never copied")],
    speed: Annotated[Optional[float], typer.Option(help="Simulated seconds per wall second")] = None,
    as_fast_as_possible: Annotated[bool, typer.Option("--as-fast-as-possible",
                                                      help="Publish without pacing (the default)")] = False,
    registry_out: Annotated[Optional[Path], typer.Option(help="Write the building's registry YAML "
                                                         "(buildings: rooms, devices) here")] = None,
    register: Annotated[bool, typer.Option(help="Load the building into the registry before publishing")] = True,
    base_topic: Annotated[Optional[str], typer.Option(help="zigbee2mqtt base topic of the heating bridge (default: "
                                                      "that of the first zigbee2mqtt_heating filter of "
                                                      "VIGIE_HEATING_TOPICS)")] = None,
    refresh_s: Annotated[int, typer.Option(help="A device reports on change and at least this often, s "
                                           "(whole minutes)")] = 1800,
    occupancy: Annotated[str, typer.Option(help="Room sensor occupancy from: pir, camera (head count > 0) "
                                           "or either")] = "pir",
    valve_scale: Annotated[Optional[list[str]], typer.Option(help="ROOM=byte|percent, for a valve column "
                                                             "whose values cannot tell (repeatable)")] = None,
) -> None:
    """Publish the OU44 heating data set (2 rooms, 1-minute, 2017, UTC) as zigbee2mqtt messages of a
    TRV and a room sensor per room and an outdoor sensor, each on change and every --refresh-s;
    returns once the broker has acknowledged all of them."""
    import tempfile

    from vigie.broker_auth import topic_prefixes
    from vigie.registry import RegistryError, load_registry_file
    from vigie.simulators.ou44 import ValveScale, load_ou44
    from vigie.simulators.replay_ou44 import BASE_TOPIC, Occupancy, plan_replay, write_registry

    if speed is not None and as_fast_as_possible:
        raise typer.BadParameter("give --speed or --as-fast-as-possible, not both", param_hint="--speed")
    _check_speed(speed)
    settings = _settings()
    try:
        if occupancy not in {str(o) for o in Occupancy}:
            raise ValueError(f"--occupancy {occupancy!r}: expected one of {', '.join(Occupancy)}")
        scales = {}
        for item in valve_scale or []:
            room, _, scale = item.partition("=")
            if scale not in {str(v) for v in ValveScale}:
                raise ValueError(f"--valve-scale {item!r}: expected ROOM=byte or ROOM=percent")
            scales[room] = ValveScale(scale)
        if base_topic is None:
            filters = [(f, d) for f, d in settings.heating_topic_decoders() if d == "zigbee2mqtt_heating"]
            base_topic = topic_prefixes(filters[:1], "VIGIE_HEATING_TOPICS")[0] if filters else BASE_TOPIC
        data = load_ou44(data_dir, scales)
        replay = plan_replay(data, base_topic=base_topic, refresh_s=refresh_s, occupancy=Occupancy(occupancy))
    except (ValueError, OSError) as exc:   # BrokerAuthError is a ValueError
        typer.echo(f"replay ou44: {exc}", err=True)
        raise typer.Exit(2)
    if registry_out:
        write_registry(replay, data, registry_out)
    if register:
        ctx = _context(ensure_influx=False)
        with tempfile.TemporaryDirectory() as tmp:
            path = registry_out or Path(tmp) / "ou44.yaml"
            if not registry_out:
                write_registry(replay, data, path)
            try:
                with ctx.sessions() as s:
                    load_registry_file(s, path, default_commune=settings.commune)
            except RegistryError as exc:
                typer.echo(f"replay ou44: {exc}", err=True)
                raise typer.Exit(2)
    total = len(replay.messages)
    typer.echo(f"publishing {total} zigbee2mqtt messages of building ou44, {replay.start:%Y-%m-%d %H:%M}.."
               f"{replay.end:%Y-%m-%d %H:%M} UTC, to {settings.mqtt_url}", err=True)
    n = _publish_all("replay ou44", replay.messages, total, settings, speed)
    typer.echo(json.dumps({"published": n, "building": "ou44", "base_topic": base_topic, "devices": replay.reports,
                           "changes": replay.changes,
                           "valve_scales": {r.room: str(r.valve_scale) for r in data.room_info},
                           "occupancy": str(replay.occupancy), "refresh_s": replay.refresh_s,
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
def registry_grant_history(household_id: Annotated[str, typer.Argument(help="The household's id in the registry")],
                           person_id: Annotated[str, typer.Argument(help="The caregiver's person id")]) -> None:
    """Let caregiver PERSON_ID read the consumption history of HOUSEHOLD_ID through the API."""
    _history_grant(household_id, person_id, True)


@registry_app.command("revoke-history")
def registry_revoke_history(household_id: Annotated[str, typer.Argument(help="The household's id in the registry")],
                            person_id: Annotated[str, typer.Argument(help="The caregiver's person id")]) -> None:
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
    key_id: Annotated[str, typer.Argument(help="Id of the key to replace (`vigie keys list`)")],
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
def keys_revoke(key_id: Annotated[str, typer.Argument(help="Id of the key to revoke (`vigie keys list`)")]) -> None:
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


@influx_app.command("setup")
def influx_setup() -> None:
    """Create the InfluxDB database (VIGIE_INFLUX_DATABASE) and its retention policies, or bring
    their durations in step with the settings, then exit. Run it with an admin's
    VIGIE_INFLUX_USERNAME/VIGIE_INFLUX_PASSWORD; the service account then needs only ``GRANT ALL``
    on the database, as its start changes nothing that is in step (docs/security.md, "InfluxDB").
    Prints the policies (name and duration as InfluxDB shows it); exit code 3 when InfluxDB refuses
    or cannot be reached."""
    from vigie.store import InfluxStore, StoreError

    settings = _settings()
    _setup_logging()
    store = InfluxStore.from_settings(settings)
    try:
        store.ensure_database(settings.influx_retention_duration)
        policies = store.retention_policies()
    except StoreError as exc:
        typer.echo(f"InfluxDB error (VIGIE_INFLUX_URL={settings.influx_url}): {exc}", err=True)
        raise typer.Exit(3)
    finally:
        store.close()
    typer.echo(json.dumps({"database": settings.influx_database, "retention_policies": policies}))


if __name__ == "__main__":
    app()

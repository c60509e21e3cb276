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
def deliver() -> None:
    """Send the notifications that are due now (first sends and retries)."""
    _setup_logging()
    from vigie.alerts.delivery import Deliverer

    ctx = _context(ensure_influx=False)
    outcome = Deliverer(ctx.sessions, ctx.settings).deliver_due()
    typer.echo(json.dumps(dataclasses.asdict(outcome)))


@app.command("dead-letters")
def dead_letters(limit: Annotated[int, typer.Option(min=1, help="Newest N entries")] = 20) -> None:
    """Print the newest dead letters (messages the ingestor refused) as JSON lines."""
    from vigie.ingest.deadletter import read_dead_letters

    settings = _settings()
    for dl in read_dead_letters(settings.data_dir / "dead-letters.jsonl", limit=limit):
        typer.echo(dl.to_json())


@registry_app.command("load")
def registry_load(path: Path) -> None:
    """Load (upsert) a YAML or CSV registry file into the database."""
    from vigie.registry import RegistryError, load_registry_file

    ctx = _context(ensure_influx=False)
    try:
        with ctx.sessions() as s:
            counts = load_registry_file(s, path)
    except (RegistryError, OSError) as exc:
        typer.echo(f"registry error: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(json.dumps(counts))


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
                         progress=lambda sent, acked: show(sent, acked, total),
                         username=settings.mqtt_username,
                         password=settings.mqtt_password.get_secret_value() if settings.mqtt_password else None)
    typer.echo(json.dumps({"published": n, "meters": cfg.meters, "days": cfg.days,
                           "faults": len(result.faults)}))


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
                upsert_rows(s, daiad_registry_rows(sorted(data.readings["meter_id"].unique())))
        report = replay_daiad(files, settings.mqtt_url, tz, data=data, speed=speed,
                              progress=_progress("replay daiad"), username=settings.mqtt_username,
                              password=settings.mqtt_password.get_secret_value() if settings.mqtt_password else None)
    except (DaiadFormatError, OSError) as exc:
        typer.echo(f"replay daiad: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(json.dumps(dataclasses.asdict(report), default=str))



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
    keep_meter_data: Annotated[bool, typer.Option(help="Keep the meter series and alerts of households "
                                                  "the person was the last resident of")] = False,
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


if __name__ == "__main__":
    app()

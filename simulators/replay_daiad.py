"""Replay real household readings — the DAIAD smart water meter trial A — as wmbusmeters messages.

Source: DAIAD project (EU FP7), https://github.com/DAIAD/data, ``swm_trialA.csv``, CC BY-SA 4.0
(``shared/data/daiad-water/SOURCE.md``). Format: ``;``-separated, header
``user key;datetime;meter reading;diff``; ``user key`` an anonymised household UUID (the meter id
here, kept whole); ``datetime`` ``DD/MM/YYYY HH:MM:SS`` local wall-clock time (Europe/Madrid);
``meter reading`` the cumulative register in **litres** (sometimes in scientific notation,
``2e+05``); ``diff`` is not used (the index is the truth; ``diff`` is negative on some meters).

Local time → UTC:

- A wall time repeated by the autumn change (02:00–03:00 on 2016-10-30) is read, per meter in file
  order, as the first pass (summer time) until the clock fails to advance (the same time again, or
  earlier), and as the second pass (winter time) from then on: the trial logged both hours under
  one wall time, with the second often a copy of the first.
- A wall time skipped by the spring change (02:00–03:00 on 2016-03-27) is read in the offset in
  force before the change (a logger that had not switched yet): 02:30 → 01:30 UTC = 03:30 CEST.

Nothing is dropped silently: rows that cannot be read are returned with their file, line and
reason; readings repeating one already read (same meter, same instant and index) are counted.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from vigie.registry import RegistryRow
from vigie.simulators.publish import WmbusReading, publish_readings

HEADER = ("user key", "datetime", "meter reading", "diff")
DATETIME_FORMAT = "%d/%m/%Y %H:%M:%S"
DRIVER = "izar"


class DaiadFormatError(ValueError):
    """A file that is not a DAIAD trial CSV (wrong header); the message names the file."""


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A row that could not be read: ``reason`` a short code (``fields``, ``user_key``,
    ``datetime``, ``reading``, ``conflict``), ``detail`` the offending value."""

    file: str
    line: int
    reason: str
    detail: str


@dataclass
class DaiadData:
    """Readings loaded from DAIAD files.

    ``readings``: one row per reading, sorted by time then meter — ``meter_id`` (str, the full
    user key), ``time`` (datetime64[s, UTC]), ``index_m3`` (float, m³ = litres / 1000),
    ``local_time`` (the file's wall-clock time, naive), ``file`` (name), ``line`` (1-based, header
    = 1). ``rows_read``: data rows in the files (= readings + rejected + duplicates).
    ``first_pass``/``second_pass``: rows at a repeated autumn wall time read as summer/winter
    time; ``nonexistent``: rows at a skipped spring wall time; ``duplicates``: rows repeating a
    reading already read (same meter, instant and index).
    """

    readings: pd.DataFrame
    rows_read: int
    rejected: list[RejectedRow] = field(default_factory=list)
    first_pass: int = 0
    second_pass: int = 0
    nonexistent: int = 0
    duplicates: int = 0

    def rejected_by_reason(self) -> dict[str, int]:
        return dict(Counter(r.reason for r in self.rejected))

    def wmbus_readings(self) -> Iterator[WmbusReading]:
        """The readings, in time order, as an IZAR meter on a wmbusmeters gateway would send them."""
        r = self.readings
        secs = r["time"].to_numpy(dtype="datetime64[s]").astype(np.int64).tolist()
        for meter_id, t, index in zip(r["meter_id"].tolist(), secs, r["index_m3"].tolist()):
            yield WmbusReading(meter_id=meter_id, time=datetime.fromtimestamp(t, timezone.utc), index_m3=index,
                               driver=DRIVER, name=f"daiad_{meter_id[:8]}")


def _read_rows(path: Path) -> tuple[list[tuple], list[RejectedRow], int]:
    """(rows as (key, datetime text, reading text, file, line), rejected, data rows) of one file."""
    rows, rejected, n = [], [], 0
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter=";")
        header = next(reader, None)
        if header is None or tuple(h.strip().lower() for h in header) != HEADER:
            raise DaiadFormatError(f"{path}: header {';'.join(header or [])!r} is not {';'.join(HEADER)!r}")
        for rec in reader:
            line = reader.line_num
            if not rec or rec == [""]:
                continue
            n += 1
            if len(rec) != len(HEADER):
                rejected.append(RejectedRow(path.name, line, "fields", f"{len(rec)} fields, expected {len(HEADER)}"))
            elif not rec[0].strip():
                rejected.append(RejectedRow(path.name, line, "user_key", "empty user key"))
            else:
                rows.append((rec[0].strip(), rec[1].strip(), rec[2].strip(), path.name, line))
    return rows, rejected, n


def _second_pass(meter: pd.Series, local: pd.Series, ambiguous: np.ndarray) -> np.ndarray:
    """For rows at a repeated wall time: True from the row where the meter's clock stops
    advancing (same or earlier wall time, file order) within that night."""
    out = np.zeros(len(local), dtype=bool)
    idx = np.flatnonzero(ambiguous)
    if len(idx):
        sub = pd.DataFrame({"m": meter.to_numpy()[idx], "day": local.dt.date.to_numpy()[idx],
                            "t": local.to_numpy()[idx]})
        back = (sub.groupby(["m", "day"], sort=False)["t"].diff() <= pd.Timedelta(0)).astype(int)
        out[idx] = back.groupby([sub["m"], sub["day"]], sort=False).cummax().to_numpy() > 0
    return out


def load_daiad(paths: Sequence[Path | str], tz: str = "Europe/Madrid") -> DaiadData:
    """Read DAIAD trial CSVs (shapes and time rules in the module and :class:`DaiadData`).

    Raises :class:`DaiadFormatError` for a file with another header, ``OSError`` for an unreadable
    file; bad rows are returned in ``rejected``, never raised.
    """
    zone = ZoneInfo(tz)
    rows: list[tuple] = []
    rejected: list[RejectedRow] = []
    total = 0
    for p in paths:
        r, rej, n = _read_rows(Path(p))
        rows += r
        rejected += rej
        total += n
    frame = pd.DataFrame(rows, columns=["meter_id", "dt", "reading", "file", "line"])
    local = pd.to_datetime(frame["dt"], format=DATETIME_FORMAT, errors="coerce")
    litres = pd.to_numeric(frame["reading"], errors="coerce")
    bad_dt = local.isna().to_numpy()
    bad_reading = ~bad_dt & ~(np.isfinite(litres.to_numpy(dtype=float)) & (litres.to_numpy(dtype=float) >= 0))
    for reason, mask, col in (("datetime", bad_dt, "dt"), ("reading", bad_reading, "reading")):
        for f, ln, v in frame.loc[mask, ["file", "line", col]].itertuples(index=False):
            rejected.append(RejectedRow(f, int(ln), reason, repr(v)[:80]))
    ok = ~(bad_dt | bad_reading)
    frame = frame[ok].reset_index(drop=True)
    local = local[ok].reset_index(drop=True).astype("datetime64[s]")
    litres = litres[ok].reset_index(drop=True)

    as_dst = local.dt.tz_localize(zone, ambiguous=np.ones(len(local), dtype=bool), nonexistent="NaT")
    as_std = local.dt.tz_localize(zone, ambiguous=np.zeros(len(local), dtype=bool), nonexistent="NaT")
    nonexistent = as_dst.isna().to_numpy()
    ambiguous = ~nonexistent & (as_dst != as_std).to_numpy()
    second = _second_pass(frame["meter_id"], local, ambiguous)
    utc = as_dst.where(~second, as_std).dt.tz_convert("UTC")
    if nonexistent.any():
        before = (local[nonexistent] - pd.Timedelta(hours=3)).dt.tz_localize(zone, ambiguous="NaT",
                                                                               nonexistent="shift_forward")
        offset = before.dt.tz_localize(None) - before.dt.tz_convert("UTC").dt.tz_localize(None)
        utc[nonexistent] = (local[nonexistent] - offset).dt.tz_localize("UTC")

    out = pd.DataFrame({"meter_id": frame["meter_id"], "time": utc.dt.as_unit("s"),
                        "index_m3": litres.to_numpy(dtype=float) / 1000.0, "local_time": local,
                        "file": frame["file"], "line": frame["line"].astype(np.int64)})
    # Repeats of a reading already read are duplicates; another index at the same instant conflicts.
    out = out.sort_values(["time", "meter_id"], kind="stable").reset_index(drop=True)
    same_instant = out.duplicated(["meter_id", "time"], keep="first").to_numpy()
    repeat = out.duplicated(["meter_id", "time", "index_m3"], keep="first").to_numpy()
    conflict = same_instant & ~repeat
    for f, ln, v in out.loc[conflict, ["file", "line", "index_m3"]].itertuples(index=False):
        rejected.append(RejectedRow(f, int(ln), "conflict", f"another index ({v} m³) at an instant already read"))
    out = out[~same_instant].reset_index(drop=True)
    return DaiadData(readings=out, rows_read=total, rejected=rejected,
                     first_pass=int((ambiguous & ~second).sum()), second_pass=int(second.sum()),
                     nonexistent=int(nonexistent.sum()), duplicates=int(repeat.sum()))


@dataclass
class ReplayReport:
    """What a replay did: ``published`` messages acknowledged by the broker, for ``meters``
    (ids), readings from ``first_time`` to ``last_time`` (UTC); the load's counts as in
    :class:`DaiadData` (``rejected`` by reason)."""

    files: list[str]
    rows_read: int
    published: int
    meters: list[str]
    first_time: datetime | None
    last_time: datetime | None
    rejected: dict[str, int]
    duplicates: int
    second_pass: int
    nonexistent: int


def replay_daiad(paths: Sequence[Path | str], mqtt_url: str, tz: str = "Europe/Madrid", *,
                 data: DaiadData | None = None, start: datetime | None = None, end: datetime | None = None,
                 speed: float | None = None,
                 progress: Callable[[int, int], None] | None = None, username: str | None = None,
                 password: str | None = None, ca_file: Path | str | None = None,
                 protocol: str = "5") -> ReplayReport:
    """Load ``paths`` (:func:`load_daiad`) and publish the readings in time order as wmbusmeters
    JSON (driver ``izar``, topic ``wmbusmeters/<user key>``, QoS 1) with
    :func:`vigie.simulators.publish.publish_readings`; returns once the broker acknowledged all.

    ``data``: the files already loaded with :func:`load_daiad` (e.g. to register the meters first).
    ``start``/``end``: publish only readings in ``[start, end)`` (naive = local time in ``tz``).
    ``speed``, ``progress``, credentials, ``ca_file``, ``protocol``: as in :func:`publish_readings`.
    """
    data = data if data is not None else load_daiad(paths, tz)
    r = data.readings
    zone = ZoneInfo(tz)
    keep = np.ones(len(r), dtype=bool)
    for bound, op in ((start, np.greater_equal), (end, np.less)):
        if bound is not None:
            b = bound if bound.tzinfo is not None else bound.replace(tzinfo=zone)
            keep &= op(r["time"], pd.Timestamp(b).tz_convert("UTC")).to_numpy()
    if not keep.all():
        data = DaiadData(readings=r[keep].reset_index(drop=True), rows_read=data.rows_read, rejected=data.rejected,
                         first_pass=data.first_pass, second_pass=data.second_pass, nonexistent=data.nonexistent,
                         duplicates=data.duplicates)
    r = data.readings
    published = publish_readings(data.wmbus_readings(), mqtt_url, speed=speed, progress=progress,
                                 username=username, password=password, ca_file=ca_file, protocol=protocol)
    return ReplayReport(
        files=[str(p) for p in paths], rows_read=data.rows_read, published=published,
        meters=sorted(r["meter_id"].unique().tolist()),
        first_time=r["time"].min().to_pydatetime() if len(r) else None,
        last_time=r["time"].max().to_pydatetime() if len(r) else None,
        rejected=data.rejected_by_reason(), duplicates=data.duplicates, second_pass=data.second_pass,
        nonexistent=data.nonexistent)


def daiad_registry_rows(meter_ids: Sequence[str]) -> list[RegistryRow]:
    """One household per replayed meter, no resident (DAIAD households are anonymous):
    household ``daiad-<user key>``, meter = the user key, driver ``izar``."""
    return [RegistryRow(household_id=f"daiad-{m}", meter_id=m, driver=DRIVER) for m in meter_ids]

"""Load the OU44 heating data set (SDU Odense, two rooms, 1-minute) as tidy frames.

Source: SDU Center for Energy Informatics, https://github.com/sdu-cfei/mshoot (commit 8a3cc89,
``resources/ou44/data/``), BSD 3-Clause; the 15-day "learning period" subset in
``shared/data/ou44-heating`` (``SOURCE.md``). Read in place, never copied into this repository.

Files: ``df_<name>.csv``, comma-separated, header ``datetime,<one column per room>`` (``df_occ``
names its rooms without the leading ``e``: ``22-508-1``; ``df_tamb``/``df_solrad`` have one column
``weather``), ``datetime`` ``YYYY-MM-DD HH:MM:SS`` on a regular 1-minute grid; ``areas.txt``,
``volumes.txt``, ``radiators.txt``: ``<room> <value>`` per line (m², m³, W).

Time: the files state no zone. The grid is regular through 2017-03-26 02:00–02:59, the hour Danish
local time skips, so the times are read as **UTC** (SOURCE.md).

Valve position (``df_hpos``): the source README says "byte 0-255" for both rooms, but one room's
column holds whole numbers up to 255 and the other's holds 0.39 … 100, i.e. 100·k/255 rounded to
two decimals — bytes already converted to %. :func:`detect_valve_scale` decides per column from
the values, never from the room's name; :class:`Ou44Data` ``valve_pct`` is always % open.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
import pandas as pd

ROOM_FILES = {"temperature_c": "df_t.csv", "valve_raw": "df_hpos.csv", "pir": "df_pir.csv",
              "head_count": "df_occ.csv", "co2_ppm": "df_co2.csv", "vav_pct": "df_vav.csv"}
OUTDOOR_FILES = {"temperature_c": "df_tamb.csv", "solar_w_m2": "df_solrad.csv"}
STATIC_FILES = {"area_m2": "areas.txt", "volume_m3": "volumes.txt", "radiator_w": "radiators.txt"}
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
STEP = pd.Timedelta(minutes=1)
# A byte k stored as % is round(100·k/255, 2): ×2.55 it lies within 0.005·2.55 of a whole number.
_BYTE_AS_PCT_TOL = 0.013
# Plausible bounds; a value outside is a unit or parsing error, not weather.
_BOUNDS = {"temperature_c": (-40.0, 60.0), "pir": (0.0, 1.0), "head_count": (0.0, 1000.0),
           "co2_ppm": (0.0, 10000.0), "vav_pct": (0.0, 100.0), "solar_w_m2": (0.0, 1500.0)}


class ValveScale(StrEnum):
    """How a room's ``df_hpos`` column is expressed."""

    BYTE = "byte"        # 0–255, the actuator's raw byte (255 = fully open)
    PERCENT = "percent"  # 0–100 % open


@dataclass(frozen=True, slots=True)
class Ou44Room:
    """One room: ``room`` the data set's name (``e22-508-1``), ``area_m2``, ``volume_m3``,
    ``radiator_w`` (radiator capacity, W) and the ``valve_scale`` its valve column uses."""

    room: str
    area_m2: float
    volume_m3: float
    radiator_w: float
    valve_scale: ValveScale


@dataclass(frozen=True)
class Ou44Data:
    """The data set, read as it is (no resampling, no filling).

    ``rooms``: one row per (minute, room), sorted by room then time — ``time`` (datetime64[ns,
    UTC]), ``room`` (str), ``temperature_c`` (°C), ``valve_raw`` (the file's value, in the room's
    scale), ``valve_pct`` (% open, 0–100, float), ``pir`` (0/1 int), ``head_count`` (persons,
    camera), ``co2_ppm``, ``vav_pct`` (ventilation damper %). ``outdoor``: one row per minute —
    ``time``, ``temperature_c`` (°C), ``solar_w_m2`` (W/m²). ``room_info``: the rooms' statics.
    """

    room_info: tuple[Ou44Room, ...]
    rooms: pd.DataFrame
    outdoor: pd.DataFrame

    @property
    def start(self) -> pd.Timestamp:
        return self.outdoor["time"].iloc[0]

    @property
    def end(self) -> pd.Timestamp:
        """The last minute in the files (inclusive)."""
        return self.outdoor["time"].iloc[-1]

    def room(self, name: str) -> Ou44Room:
        for r in self.room_info:
            if r.room == name:
                return r
        raise KeyError(name)


def detect_valve_scale(values: np.ndarray, where: str) -> ValveScale:
    """The scale of one valve column from its values.

    - any value above 100 → it can only be bytes (all whole numbers ≤ 255 required);
    - not all whole numbers, but each is 100·k/255 to two decimals → bytes converted to %;
    - other fractional values in 0–100 → %.
    Raises ValueError (naming ``where``) for values outside 0–255, fractional values above 100,
    or whole numbers all ≤ 100 (a byte and a % column look alike: pass the scale explicitly).
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ValueError(f"{where}: no valve values")
    if v.min() < 0 or v.max() > 255:
        raise ValueError(f"{where}: valve values {v.min():g}..{v.max():g} outside 0..255")
    whole = bool(np.all(v == np.round(v)))
    if v.max() > 100:
        if not whole:
            raise ValueError(f"{where}: valve values above 100 that are not whole bytes")
        return ValveScale.BYTE
    if whole:
        raise ValueError(f"{where}: whole valve values all ≤ 100 could be bytes or %; give the scale explicitly")
    return ValveScale.PERCENT


def byte_grid_share(values: np.ndarray) -> float:
    """Share of ``values`` that are bytes expressed as % (100·k/255 to two decimals): evidence that
    a % column was converted from the actuator's byte (1.0 for such a column; a free % column has
    about 0.03 by chance)."""
    x = np.asarray(values, dtype=np.float64) * 2.55
    return float(np.mean(np.abs(x - np.round(x)) <= _BYTE_AS_PCT_TOL))


def valve_pct(raw: np.ndarray, scale: ValveScale) -> np.ndarray:
    """``raw`` in ``scale`` → % open (float64)."""
    raw = np.asarray(raw, dtype=np.float64)
    return raw * (100.0 / 255.0) if scale is ValveScale.BYTE else raw


def _read_csv(path: Path, expect: int | None = None) -> pd.DataFrame:
    """One ``df_*.csv``: the ``datetime`` column parsed as UTC into ``time``, the other columns
    numeric. Raises ValueError naming the file (and line) on a bad header, time or value."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if frame.columns[0] != "datetime" or len(frame.columns) < 2:
        raise ValueError(f"{path}: header {','.join(frame.columns)!r}, expected 'datetime,<columns>'")
    time = pd.to_datetime(frame["datetime"], format=DATETIME_FORMAT, errors="coerce")
    if time.isna().any():
        line = int(np.flatnonzero(time.isna().to_numpy())[0]) + 2
        raise ValueError(f"{path}:{line}: bad datetime {frame['datetime'].iloc[line - 2]!r} "
                         f"(expected YYYY-MM-DD HH:MM:SS)")
    out = pd.DataFrame({"time": time.dt.tz_localize("UTC").dt.as_unit("ns")})
    for col in frame.columns[1:]:
        num = pd.to_numeric(frame[col], errors="coerce")
        if num.isna().any():
            line = int(np.flatnonzero(num.isna().to_numpy())[0]) + 2
            raise ValueError(f"{path}:{line}: column {col!r}: not a number: {frame[col].iloc[line - 2]!r}")
        out[col] = num.to_numpy(dtype=np.float64)
    steps = np.diff(out["time"].to_numpy())
    if len(steps) and not np.all(steps == STEP.to_timedelta64()):
        bad = int(np.flatnonzero(steps != STEP.to_timedelta64())[0]) + 3
        raise ValueError(f"{path}:{bad}: not on the regular 1-minute grid (a gap, repeat or DST jump)")
    if expect is not None and len(out) != expect:
        raise ValueError(f"{path}: {len(out)} rows, the other files have {expect}")
    return out


def _read_static(path: Path) -> dict[str, float]:
    out = {}
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            out[parts[0]] = float(parts[1])
        except (IndexError, ValueError):
            raise ValueError(f"{path}:{no}: expected '<room> <number>', got {line!r}") from None
    return out


def _room_column(columns: list[str], room: str, path: Path) -> str:
    """The column of ``room`` (``df_occ`` drops the leading ``e``: ``22-508-1``)."""
    for c in columns:
        if c == room or (not c.startswith("e") and "e" + c == room):
            return c
    raise ValueError(f"{path}: no column for room {room!r} (columns {', '.join(columns)})")


def load_ou44(data_dir: str | Path, valve_scales: Mapping[str, ValveScale | str] | None = None) -> Ou44Data:
    """Read the data set in ``data_dir`` (shapes in :class:`Ou44Data`). ``valve_scales``: a room's
    valve scale when its values cannot tell (default: :func:`detect_valve_scale`).

    Rooms are those of ``radiators.txt`` (each needs an area, a volume and a column in every room
    file). Raises FileNotFoundError for a missing file, ValueError naming the file (and line) for a
    bad header, time, value, a grid that is not regular 1-minute or differs between files, or a
    value outside plausible bounds.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: no such directory")
    statics = {k: _read_static(data_dir / f) for k, f in STATIC_FILES.items()}
    names = list(statics["radiator_w"])
    if not names:
        raise ValueError(f"{data_dir / STATIC_FILES['radiator_w']}: no rooms")
    for key, values in statics.items():
        missing = [r for r in names if r not in values]
        if missing:
            raise ValueError(f"{data_dir / STATIC_FILES[key]}: no value for room(s) {', '.join(missing)}")
    scales = {r: ValveScale(s) for r, s in (valve_scales or {}).items()}
    if unknown := sorted(set(scales) - set(names)):
        raise ValueError(f"valve scale given for unknown room(s) {', '.join(unknown)} (rooms: {', '.join(names)})")

    files = {**{k: data_dir / f for k, f in ROOM_FILES.items()}, **{"o_" + k: data_dir / f
                                                                       for k, f in OUTDOOR_FILES.items()}}
    frames: dict[str, pd.DataFrame] = {}
    times = None
    for key, path in files.items():
        frames[key] = _read_csv(path, None if times is None else len(times))
        if times is None:
            times = frames[key]["time"]
        elif not frames[key]["time"].equals(times):
            raise ValueError(f"{path}: its times differ from {files[next(iter(files))]}'s")

    parts, info = [], []
    for room in names:
        cols = {k: frames[k][_room_column(list(frames[k].columns[1:]), room, files[k])].to_numpy()
                for k in ROOM_FILES}
        scale = scales.get(room) or detect_valve_scale(cols["valve_raw"], f"{files['valve_raw']} column {room}")
        pct = valve_pct(cols["valve_raw"], scale)
        if pct.min() < 0 or pct.max() > 100:
            raise ValueError(f"{files['valve_raw']} column {room}: {pct.min():g}..{pct.max():g} % in scale {scale}")
        for k in ("temperature_c", "pir", "head_count", "co2_ppm", "vav_pct"):
            _check_bounds(cols[k], k, f"{files[k]} column {room}")
        parts.append(pd.DataFrame({"time": times, "room": room, "temperature_c": cols["temperature_c"],
                                   "valve_raw": cols["valve_raw"], "valve_pct": pct,
                                   "pir": cols["pir"].astype(np.int64), "head_count": cols["head_count"],
                                   "co2_ppm": cols["co2_ppm"], "vav_pct": cols["vav_pct"]}))
        info.append(Ou44Room(room, statics["area_m2"][room], statics["volume_m3"][room],
                             statics["radiator_w"][room], scale))
    outdoor = pd.DataFrame({"time": times})
    for k in OUTDOOR_FILES:
        f = frames["o_" + k]
        if len(f.columns) != 2:
            raise ValueError(f"{files['o_' + k]}: expected one value column, got {', '.join(f.columns[1:])}")
        outdoor[k] = f.iloc[:, 1].to_numpy()
        _check_bounds(outdoor[k].to_numpy(), k, str(files["o_" + k]))
    return Ou44Data(room_info=tuple(info), rooms=pd.concat(parts, ignore_index=True), outdoor=outdoor)


def _check_bounds(values: np.ndarray, key: str, where: str) -> None:
    lo, hi = _BOUNDS[key]
    if values.min() < lo or values.max() > hi:
        raise ValueError(f"{where}: {key} {values.min():g}..{values.max():g} outside {lo:g}..{hi:g}")

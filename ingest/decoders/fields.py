"""Field parsing shared by the decoders: JSON bodies, numbers, ids and timestamps.

Every helper raises :class:`~vigie.ingest.decoders.DecodeError` with the field's name and a
``kind`` code, so a dead letter says which field was wrong and how.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from typing import Any

from vigie.ingest.decoders import DecodeError

# A plain decimal number as text ("12.5", "-3", "1e3"): Python's float() would also take
# "nan", "inf" and "1_000", none of which a meter means.
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_ID_LENGTH = 64  # the registry's meter id column
# No smart water meter reading predates this; earlier times come from clocks reset to their epoch.
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
# A register of 9 integer digits (m³) holds any water meter's index, household to bulk;
# a larger value is a decoding error, not water.
MAX_INDEX_M3 = 1e9


def load_json(payload: bytes) -> Any:
    """The payload parsed as UTF-8 JSON (RFC 8259). Errors: ``not_utf8``, ``not_json``."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"payload is not UTF-8 text (byte {exc.start})", "not_utf8") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise DecodeError(f"payload is not JSON: {exc}", "not_json") from None
    except RecursionError:
        raise DecodeError("payload is not usable JSON: nested too deeply", "not_json") from None


def number(obj: dict, field: str, kind: str, *, required: bool = False, minimum: float | None = None,
           maximum: float | None = None) -> float | None:
    """``obj[field]`` as a finite float. JSON numbers and decimal strings (``"12.5"``) are accepted;
    booleans, other strings, NaN and ±inf are not. Absent or null: ``None``, or an error (``kind``)
    when ``required``. ``minimum``/``maximum`` are inclusive bounds."""
    value = obj.get(field)
    if value is None:
        if required:
            what = "missing" if field not in obj else "null"
            raise DecodeError(f"{field} is {what}", kind)
        return None
    if isinstance(value, bool):
        raise DecodeError(f"{field} is a boolean, expected a number", kind)
    if isinstance(value, (int, float)):
        x = float(value)
    elif isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        x = float(value)
    else:
        raise DecodeError(f"{field} is not a number: {_short(value)}", kind)
    if not math.isfinite(x):
        raise DecodeError(f"{field} is not a finite number: {_short(value)}", kind)
    if minimum is not None and x < minimum:
        raise DecodeError(f"{field} is {x:g}, below {minimum:g}", kind)
    if maximum is not None and x > maximum:
        raise DecodeError(f"{field} is {x:g}, above {maximum:g}", kind)
    return x


def meter_id(obj: dict, field: str) -> str:
    """``obj[field]`` as a meter id: a non-empty JSON string of at most 64 printable characters,
    kept exactly as sent (a number is refused: ``"00123"`` and ``123`` are different meters).
    Error kind ``bad_id``."""
    value = obj.get(field)
    if value is None:
        raise DecodeError(f"{field} is {'missing' if field not in obj else 'null'}", "bad_id")
    if not isinstance(value, str):
        raise DecodeError(f"{field} must be a JSON string, got {type(value).__name__} {_short(value)}", "bad_id")
    if not value.strip():
        raise DecodeError(f"{field} is empty", "bad_id")
    if value != value.strip() or _CONTROL.search(value):
        raise DecodeError(f"{field} {value!r} has surrounding spaces or control characters", "bad_id")
    if len(value) > MAX_ID_LENGTH:
        raise DecodeError(f"{field} is longer than {MAX_ID_LENGTH} characters", "bad_id")
    return value


def timestamp(obj: dict, field: str, received_at: datetime, max_future_s: float, *,
              naive_is_utc: bool) -> datetime:
    """``obj[field]`` as an aware UTC datetime; ``received_at`` when absent or null.

    Accepts ISO 8601 / RFC 3339 text (``2026-03-14T07:42:10Z``, ``…+01:00``, fractions, a space
    for ``T``). Text without an offset is UTC when ``naive_is_utc`` (the field is UTC by
    definition), else refused. Errors: ``bad_time`` (unreadable, or before :data:`EARLIEST`: a
    gateway clock reset to its epoch), ``future_time`` (more than ``max_future_s`` after
    ``received_at``: a gateway clock that is wrong).
    """
    value = obj.get(field)
    if value is None:
        return received_at
    if not isinstance(value, str):
        raise DecodeError(f"{field} must be an ISO 8601 string, got {_short(value)}", "bad_time")
    try:
        # fromisoformat (Python ≥ 3.11, "Z" included) is ~20x faster than strptime, which stays
        # as the fallback for the unpadded forms ("2026-3-4T7:42:10Z") only it reads.
        t = datetime.fromisoformat(value)
    except ValueError:
        try:
            t = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            raise DecodeError(f"{field} {_short(value)} is not an ISO 8601 time", "bad_time") from None
    if t.tzinfo is None:
        if not naive_is_utc:
            raise DecodeError(f"{field} {_short(value)} has no UTC offset", "bad_time")
        t = t.replace(tzinfo=timezone.utc)
    elif t.utcoffset():
        t = t.astimezone(timezone.utc)
    if t < EARLIEST:
        raise DecodeError(f"{field} {value} is before {EARLIEST:%Y-%m-%d} (gateway clock reset?)", "bad_time")
    ahead = (t - received_at).total_seconds()
    if ahead > max_future_s:
        raise DecodeError(f"{field} {value} is {ahead:.0f} s after reception (more than {max_future_s:g} s "
                          f"ahead: wrong gateway clock?)", "future_time")
    return t


def _short(value: Any, limit: int = 40) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "…"

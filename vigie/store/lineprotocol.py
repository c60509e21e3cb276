"""InfluxDB line protocol parsed the way InfluxDB 1.x parses it, for the embedded store.

Reference: https://docs.influxdata.com/influxdb/v1/write_protocols/line_protocol_reference/ and
InfluxDB 1.x's own scanner (``models/points.go``), whose rules are followed here, quirks included,
so that a body either store accepts gives the same points:

- lines split on newlines outside quoted string values; blank lines and ``#`` comments skipped;
  leading spaces/tabs ignored;
- measurement: up to the first unescaped ``,`` or space (``\\,`` ``\\ `` ``\\=`` ``\\"`` unescaped);
- tags: ``key=value`` pairs, ``\\,`` ``\\=`` ``\\ `` unescaped, sorted by key; an empty value, an
  unescaped ``=`` in a value or a repeated key refuse the line;
- fields: float (``1``, ``-1.5``, ``1e3``), integer (``1i``), string (``"..."``, ``\\"`` and
  ``\\\\`` unescaped), boolean (``t``/``true``/``True``/``TRUE``, ``f``…); ``NaN``, ``Inf`` and
  unsigned (``1u``, off by default in 1.x) refuse the line; a field named ``time`` is dropped;
- timestamp: optional integer in the request's precision (``n``, ``u``, ``ms``, ``s``, ``m``, ``h``;
  another value counts as ``n``, as in InfluxDB); when absent, the server's clock truncated to it.

Point identity is the **series key** (escaped measurement and sorted tags, :attr:`Point.key`)
plus the timestamp.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

#: Nanoseconds per unit of a write's ``precision``.
PRECISION_NS = {"n": 1, "u": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
                "h": 3_600_000_000_000}
#: InfluxDB's time range (``models.MinNanoTime``, ``MaxNanoTime``).
MIN_NS, MAX_NS = -9223372036854775806, 9223372036854775806
MAX_KEY_LENGTH = 65535

FLOAT, INTEGER, STRING, BOOLEAN = "float", "integer", "string", "boolean"


class Point(NamedTuple):
    """One parsed point: ``measurement`` and ``tags`` (sorted ``(key, value)`` pairs) unescaped;
    ``key`` the series key (InfluxDB's escaped form, e.g. ``water_reading,meter_id=a\\ b``);
    ``fields`` ``(name, type, value)`` in line order, ``type`` one of float|integer|string|boolean;
    ``time_ns`` epoch nanoseconds. (A named tuple: a batch makes thousands.)"""

    measurement: str
    tags: tuple[tuple[str, str], ...]
    key: str
    fields: tuple[tuple[str, str, object], ...]
    time_ns: int


class _Bad(Exception):
    """A line InfluxDB would refuse; the message is InfluxDB's reason."""


_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ "})
_TAG_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "=": r"\="})


def series_key(measurement: str, tags: tuple[tuple[str, str], ...]) -> str:
    """The series key of ``measurement`` and sorted ``tags`` (unescaped), escaped as InfluxDB keeps it."""
    out = measurement.translate(_MEASUREMENT_ESCAPES)
    for k, v in tags:
        out += "," + k.translate(_TAG_ESCAPES) + "=" + v.translate(_TAG_ESCAPES)
    return out


def _unescape(text: str, chars: str) -> str:
    """``text`` with ``\\c`` replaced by ``c`` for each ``c`` of ``chars`` (other backslashes kept)."""
    if "\\" not in text:
        return text
    for c in chars:
        text = text.replace("\\" + c, c)
    return text


def _unescape_string(text: str) -> str:
    """A string field's value without its ``\\\\`` and ``\\"`` escapes (left to right, as InfluxDB)."""
    if "\\" not in text:
        return text
    out, i, n = [], 0, len(text)
    while i < n:
        if text[i] == "\\" and i + 1 < n and text[i + 1] in "\\\"":
            out.append(text[i + 1])
            i += 2
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def parse_lines(body: str, precision: str, now_ns: int) -> tuple[list[Point], list[str]]:
    """The points of a ``/write`` body and InfluxDB's message for each refused line
    (``unable to parse '<line>': <reason>``). ``now_ns``: the server clock, for lines without a
    timestamp."""
    mult = PRECISION_NS.get(precision, 1)
    default_ns = now_ns - now_ns % mult
    points: list[Point] = []
    failed: list[str] = []
    keys: dict[str, tuple] = {}
    plain = "\\" not in body and '"' not in body
    pos, n = 0, len(body)
    while pos < n:
        end = body.find("\n", pos)
        end = n if end < 0 else end
        start = pos
        while start < end and body[start] in " \t\0":
            start += 1
        if start >= end or body[start] == "#":
            pos = end + 1
            continue
        point = _fast(body[start:end], mult, default_ns, keys)
        if point is None:
            if not plain:
                # A newline inside a quoted string value does not end the line: InfluxDB's scan.
                end = _scan_line(body, pos)
            text = body[start:end]
            try:
                point = _parse_point(text, mult, default_ns)
            except _Bad as exc:
                failed.append(f"unable to parse '{text}': {exc}")
        if point is not None:
            points.append(point)
        pos = end + 1
    return points, failed


def _scan_line(buf: str, i: int) -> int:
    """The index of the newline ending the line that starts at ``i`` (``scanLine``)."""
    quoted = fields = False
    equals = commas = 0
    n = len(buf)
    while i < n:
        c = buf[i]
        if c == "\\":
            i += 2
            continue
        if c == " ":
            fields = True
        if fields:
            if not quoted and c == "=":
                i += 1
                equals += 1
                continue
            if not quoted and c == ",":
                i += 1
                commas += 1
                continue
            if c == '"' and equals > commas:
                i += 1
                quoted = not quoted
                continue
        if c == "\n" and not quoted:
            break
        i += 1
    return min(i, n)


# --- the common case ----------------------------------------------------------------------------
# Lines without backslashes, with plain names and values: what Vigie's writers produce. Anything
# else (and anything this path cannot vouch for) goes to the full scanner below.
_NAME = r'[^\s,="\\#][^\s,="\\]*'
_FAST_KEY = re.compile(rf"({_NAME})((?:,[^\s,=\"\\]+=[^\s,=\"\\]+)*)")
_FLOAT_RE = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INT_RE = re.compile(r"-?[0-9]{1,18}i")
_BOOLS = {"t": True, "T": True, "true": True, "True": True, "TRUE": True,
          "f": False, "F": False, "false": False, "False": False, "FALSE": False}
_TIME_RE = re.compile(r"-?[0-9]{1,19}")


def _fast(text: str, mult: int, default_ns: int, keys: dict[str, tuple]) -> Point | None:
    """``text`` parsed when it is a plain line (no backslash; names, tags and values without
    quotes, commas or spaces but in quoted strings), else ``None``. ``keys``: series keys already
    parsed in this body (a batch holds few distinct ones)."""
    if "\\" in text:
        return None
    sp = text.find(" ")
    if sp <= 0:
        return None
    key_text = text[:sp]
    parsed = keys.get(key_text)
    if parsed is None:
        m = _FAST_KEY.fullmatch(key_text)
        if not m:
            return None
        measurement, tag_text = m.group(1), m.group(2)
        tags: tuple[tuple[str, str], ...] = ()
        if tag_text:
            pairs = [p.split("=", 1) for p in tag_text[1:].split(",")]
            if len({p[0] for p in pairs}) != len(pairs):
                return None
            tags = tuple(sorted((k, v) for k, v in pairs))
        parsed = keys[key_text] = (measurement, tags, series_key(measurement, tags))
    measurement, tags, key = parsed
    rest = text[sp + 1:]
    j = rest.rfind(" ")
    if j < 0:
        fields_text, t = rest, default_ns
    else:
        # A space in a string value with no timestamp after it lands here: not digits, full scan.
        ts = rest[j + 1:]
        if not _TIME_RE.fullmatch(ts):
            return None
        fields_text, t = rest[:j], int(ts) * mult
        if not MIN_NS <= t <= MAX_NS:
            return None
    fields = []
    for part in fields_text.split(","):
        name, _, raw = part.partition("=")
        if not name or not raw or '"' in name or " " in name:
            return None
        if raw[0] == '"':
            # One quoted string without comma, backslash or inner quote (else: full scan).
            if len(raw) < 2 or raw[-1] != '"' or raw.count('"') != 2:
                return None
            value: object = raw[1:-1]
            kind = STRING
        elif " " in raw:
            return None
        elif raw in _BOOLS:
            value, kind = _BOOLS[raw], BOOLEAN
        elif raw[-1] == "i":
            if not _INT_RE.fullmatch(raw):
                return None
            value, kind = int(raw[:-1]), INTEGER
        else:
            if not _FLOAT_RE.fullmatch(raw):
                return None
            value, kind = float(raw), FLOAT
            if not math.isfinite(value):
                return None
        if name != "time":
            fields.append((name, kind, value))
    if not fields:
        return None
    if len(key) + 4 + max(len(name) for name, _, _ in fields) > MAX_KEY_LENGTH:
        return None
    return Point(measurement, tags, key, tuple(fields), t)


# --- InfluxDB's scanner -------------------------------------------------------------------------

def _parse_point(buf: str, mult: int, default_ns: int) -> Point:
    i, measurement_raw, tag_raws = _scan_key(buf)
    if not measurement_raw:
        raise _Bad("missing measurement")
    i, fields_raw = _scan_fields(buf, i)
    if not fields_raw:
        raise _Bad("missing fields")
    measurement = _unescape(measurement_raw, ',"= ')
    tags = tuple(sorted((_unescape(k, ", ="), _unescape(v, ", =")) for k, v in tag_raws))
    key = series_key(measurement, tags)
    fields = []
    for name_raw, value_raw in _walk_fields(fields_raw):
        name = _unescape(name_raw, ',"= ')
        if len(key) + 4 + len(name) > MAX_KEY_LENGTH:
            raise _Bad(f"max key length exceeded: {len(key) + 4 + len(name)} > {MAX_KEY_LENGTH}")
        if not name:
            continue
        kind, value = _field_value(value_raw)
        if name != "time":
            fields.append((name, kind, value))
    i, ts = _scan_time(buf, i)
    if not ts:
        t = default_ns
    else:
        try:
            t = int(ts) * mult
        except ValueError:
            raise _Bad(f'strconv.ParseInt: parsing "{ts}": invalid syntax') from None
        if not MIN_NS <= t <= MAX_NS:
            raise _Bad(f"time outside range {MIN_NS} - {MAX_NS}")
        if buf[i:].strip(" "):
            raise _Bad("point is invalid")
    if not fields:
        raise _Bad("missing fields")
    return Point(measurement, tags, key, tuple(fields), t)


def _scan_key(buf: str) -> tuple[int, str, list[tuple[str, str]]]:
    """(end, raw measurement, raw (key, value) tags) of the series key at the start of ``buf``
    (``scanKey``: ``scanMeasurement``, ``scanTags``, the duplicate check)."""
    n = len(buf)
    i = 0
    if i >= n or buf[i] == ",":
        raise _Bad("missing measurement")
    while True:
        i += 1
        if i >= n:
            raise _Bad("missing fields")
        if buf[i - 1] == "\\":
            continue
        if buf[i] == ",":
            measurement, i, state = buf[:i], i + 1, "tag"
            break
        if buf[i] == " ":
            return i, buf[:i], []
    tags = []
    while state == "tag":
        # tag key
        if i >= n or buf[i] in " ,=":
            raise _Bad("missing tag key")
        k0 = i
        while True:
            i += 1
            if i >= n or (buf[i] in " ," and buf[i - 1] != "\\"):
                raise _Bad("missing tag value")
            if buf[i] == "=" and buf[i - 1] != "\\":
                key = buf[k0:i]
                i += 1
                break
        # tag value
        if i >= n or buf[i] in ", ":
            raise _Bad("missing tag value")
        v0 = i
        while True:
            i += 1
            if i >= n:
                raise _Bad("missing fields")
            if buf[i] == "=" and buf[i - 1] != "\\":
                raise _Bad("invalid tag format")
            if buf[i] == "," and buf[i - 1] != "\\":
                tags.append((key, buf[v0:i]))
                i += 1
                break
            if buf[i] == " " and buf[i - 1] != "\\":
                tags.append((key, buf[v0:i]))
                state = "fields"
                break
    keys = sorted(k for k, _ in tags)
    if any(a == b for a, b in zip(keys, keys[1:])):
        raise _Bad("duplicate tags")
    return i, measurement, tags


def _is_numeric(c: str) -> bool:
    return "0" <= c <= "9" or c == "."


def _scan_fields(buf: str, i: int) -> tuple[int, str]:
    """(end, raw field section) starting at ``i`` (``scanFields``)."""
    n = len(buf)
    while i < n and buf[i] in " \t\0":
        i += 1
    start = i
    quoted = False
    equals = commas = 0
    while i < n:
        c = buf[i]
        if c == "\\" and i + 1 < n:
            i += 2
            continue
        if c == '"' and equals > commas:
            quoted = not quoted
            i += 1
            continue
        if c == "=" and not quoted:
            equals += 1
            if buf[i - 1] == " " and buf[i - 2] != "\\":
                raise _Bad("missing field key")
            if buf[i - 1] == "," and buf[i - 2] != "\\":
                raise _Bad("missing field key")
            if i + 1 >= n:
                raise _Bad("missing field value")
            nxt = buf[i + 1]
            if nxt in ", ":
                raise _Bad("missing field value")
            if _is_numeric(nxt) or nxt in "-Nn":
                i = _scan_number(buf, i + 1)
                continue
            if nxt != '"':
                i = _scan_boolean(buf, i + 1)
                continue
        if c == "," and not quoted:
            commas += 1
        if c == " " and not quoted:
            break
        i += 1
    if quoted:
        raise _Bad("unbalanced quotes")
    if equals == 0 or commas != equals - 1:
        raise _Bad("invalid field format")
    return i, buf[start:i]


def _scan_number(buf: str, i: int) -> int:
    """End of the number starting at ``i`` (``scanNumber``); :class:`_Bad` for an invalid one."""
    n = len(buf)
    start = i
    is_int = is_unsigned = decimal = scientific = False
    if i < n and buf[i] == "-":
        i += 1
        if i == n:
            raise _Bad("invalid number")
    while i < n:
        c = buf[i]
        if c in ", ":
            break
        if c == "i" and i > start and not (is_int or is_unsigned):
            is_int = True
            i += 1
            continue
        if c == "u" and i > start and not (is_int or is_unsigned):
            is_unsigned = True
            i += 1
            continue
        if c == ".":
            if decimal:
                raise _Bad("invalid number")
            decimal = True
        if i > start and c in "eE":
            scientific = True
            i += 1
            continue
        if c in "+-" and buf[i - 1] in "eE":
            i += 1
            continue
        if i + 2 < n and c in "Nn":
            raise _Bad("invalid number")
        if not _is_numeric(c):
            raise _Bad("invalid number")
        i += 1
    if (is_int or is_unsigned) and (decimal or scientific):
        raise _Bad("invalid number")
    digits = i - start - is_int - decimal - (buf[start] == "-")
    if digits == 0:
        raise _Bad("invalid number")
    text = buf[start:i]
    if is_int:
        if buf[i - 1] != "i":
            raise _Bad("invalid number")
        if len(text) - 1 >= 19:
            try:
                v = int(text[:-1])
            except ValueError:
                raise _Bad("invalid number") from None
            if not -2**63 <= v < 2**63:
                raise _Bad(f'unable to parse integer {text[:-1]}: strconv.ParseInt: parsing "{text[:-1]}": '
                           "value out of range")
    elif is_unsigned:
        raise _Bad("invalid number")  # uint64 fields are off in InfluxDB 1.x
    elif scientific or len(text) >= 25:
        try:
            if not math.isfinite(float(text)):
                raise ValueError
        except ValueError:
            raise _Bad("invalid float") from None
    return i


def _scan_boolean(buf: str, i: int) -> int:
    """End of the boolean starting at ``i`` (``scanBoolean``)."""
    n = len(buf)
    start = i
    if i < n and buf[i] not in "tfTF":
        raise _Bad("invalid boolean")
    i += 1
    while i < n and buf[i] not in ", ":
        i += 1
    if buf[start:i] not in _BOOLS:
        raise _Bad("invalid boolean")
    return i


def _scan_time(buf: str, i: int) -> tuple[int, str]:
    n = len(buf)
    while i < n and buf[i] in " \t\0":
        i += 1
    start = i
    while i < n:
        c = buf[i]
        if c in "\n ":
            break
        if i == start and c == "-":
            i += 1
            continue
        if not "0" <= c <= "9":
            raise _Bad("bad timestamp")
        i += 1
    return i, buf[start:i]


def _walk_fields(fields: str):
    """(raw key, raw value) of each field of a scanned field section (``walkFields``)."""
    buf = fields
    while buf:
        i = _scan_to(buf, 0, "=")
        key, buf = buf[:i], buf[i + 1:]
        i = _scan_field_value(buf)
        value, buf = buf[:i], buf[i:]
        yield key, value
        if buf:
            buf = buf[1:]


def _scan_to(buf: str, i: int, stop: str) -> int:
    n = len(buf)
    while i < n:
        if buf[i] == stop and (i == 0 or buf[i - 1] != "\\"):
            break
        i += 1
    return i


def _scan_field_value(buf: str) -> int:
    i, n, quoted = 0, len(buf), False
    while i < n:
        if buf[i] == "\\" and i + 1 < n and buf[i + 1] in '"\\':
            i += 2
            continue
        if buf[i] == '"':
            i += 1
            quoted = not quoted
            continue
        if buf[i] == "," and not quoted:
            break
        i += 1
    return i


def _field_value(raw: str) -> tuple[str, object]:
    """(type, value) of a raw field value the scanner accepted."""
    c = raw[0]
    if c == '"':
        return STRING, _unescape_string(raw[1:-1])
    if c in "tfTF":
        return BOOLEAN, _BOOLS[raw]
    if raw[-1] == "i":
        return INTEGER, int(raw[:-1])
    try:
        value = float(raw)
    except ValueError:
        raise _Bad("invalid number") from None
    if not math.isfinite(value):
        raise _Bad("invalid float")
    return FLOAT, value

"""The InfluxQL subset Vigie emits, parsed into statements for the embedded store.

Reference: https://docs.influxdata.com/influxdb/v1/query_language/spec/. Supported, exactly the
shapes ``vigie/store/*.py``, ``analytics/*.py`` and ``vigie/privacy.py`` build (and the tests):

- ``SELECT <fields|tags|*> FROM <[db.][rp.]measurement> [WHERE <cond>]``, raw points;
- ``SELECT <count|first|last|max|min>(<field>) [AS <alias>] FROM … [WHERE …] [GROUP BY <tag>, …]``,
  one function per statement;
- ``<cond>``: ``AND``/``OR``/parentheses over ``<tag|field> <op> <literal>`` with ``= != <> < <= >
  >=`` and ``=~ !~ /regex/``, and ``time`` compared with an RFC 3339 string, an integer (ns) or a
  duration literal (top-level ``AND`` only);
- ``SHOW DATABASES``, ``SHOW MEASUREMENTS [ON db]``, ``SHOW RETENTION POLICIES [ON db]``,
  ``CREATE DATABASE``, ``CREATE``/``ALTER RETENTION POLICY … DURATION … REPLICATION … [SHARD
  DURATION …] [DEFAULT]``, ``DROP SERIES [FROM m] [WHERE <tag cond>]``, ``DROP MEASUREMENT``,
  ``DROP DATABASE``; several statements separated by ``;``.

Anything else that is valid InfluxQL (``GROUP BY time()``, ``fill()``, ``mean()``, ``LIMIT``,
``ORDER BY``, ``now()``, arithmetic, ``SHOW TAG KEYS``, ``DELETE``…) raises
:class:`UnsupportedInfluxQL` naming the construct; text that is not InfluxQL raises
:class:`InfluxQLSyntaxError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd


class InfluxQLSyntaxError(ValueError):
    """The text is not InfluxQL (InfluxDB answers ``error parsing query: …``)."""


class UnsupportedInfluxQL(ValueError):
    """Valid InfluxQL outside the subset the embedded store answers; ``construct`` names it."""

    def __init__(self, construct: str) -> None:
        super().__init__(f"the embedded store does not support {construct} (InfluxQL subset: "
                         "vigie.store.influxql)")
        self.construct = construct


# --- AST --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VarRef:
    name: str


@dataclass(frozen=True)
class Literal:
    """``value``: str, int, float, bool, or a compiled regex (``=~``/``!~`` operands)."""

    value: object


@dataclass(frozen=True)
class Binary:
    """``op``: AND, OR, =, !=, <, <=, >, >=, =~, !~ (``<>`` is read as ``!=``)."""

    op: str
    lhs: object
    rhs: object


@dataclass(frozen=True)
class Call:
    func: str
    arg: VarRef


@dataclass(frozen=True)
class Wildcard:
    pass


@dataclass(frozen=True)
class SelectField:
    expr: VarRef | Call | Wildcard
    alias: str | None = None


@dataclass(frozen=True)
class Source:
    name: str
    policy: str | None = None
    database: str | None = None


@dataclass(frozen=True)
class Select:
    fields: tuple[SelectField, ...]
    source: Source
    condition: object | None
    group_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class ShowDatabases:
    pass


@dataclass(frozen=True)
class ShowMeasurements:
    database: str | None = None


@dataclass(frozen=True)
class ShowRetentionPolicies:
    database: str | None = None


@dataclass(frozen=True)
class CreateDatabase:
    name: str


@dataclass(frozen=True)
class CreateRetentionPolicy:
    name: str
    database: str
    duration_ns: int
    replication: int
    shard_ns: int | None
    default: bool


@dataclass(frozen=True)
class AlterRetentionPolicy:
    name: str
    database: str
    duration_ns: int | None
    replication: int | None
    shard_ns: int | None
    default: bool


@dataclass(frozen=True)
class DropSeries:
    source: Source | None
    condition: object | None


@dataclass(frozen=True)
class DropMeasurement:
    name: str


@dataclass(frozen=True)
class DropDatabase:
    name: str


# --- tokens -----------------------------------------------------------------------------------

_DURATION_UNITS = {"ns": 1, "u": 1_000, "µ": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                   "m": 60_000_000_000, "h": 3_600_000_000_000, "d": 86_400_000_000_000,
                   "w": 604_800_000_000_000}
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<duration>(?:[0-9]+(?:ns|ms|u|µ|s|m|h|d|w))+(?![\w.]))
  | (?P<number>(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+)
  | (?P<integer>[0-9]+)
  | (?P<ident>[^\W\d]\w*)
  | (?P<qident>"(?:[^"\\]|\\.)*")
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<op>=~|!~|!=|<>|<=|>=|=|<|>|\(|\)|,|\.|\*|;|-|\+|/|%|::)
""", re.VERBOSE | re.DOTALL)
_REGEX = re.compile(r"/((?:[^/\\\n]|\\.)*)/")
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}


@dataclass(frozen=True)
class _Tok:
    kind: str   # ident, qident, string, number, integer, duration, regex, op, eof
    text: str
    value: object


def _unquote(body: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), body)


def _duration_ns(text: str) -> int:
    return sum(int(n) * _DURATION_UNITS[u] for n, u in re.findall(r"([0-9]+)(ns|ms|u|µ|s|m|h|d|w)", text))


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos, n = 0, len(text)
    while pos < n:
        if out and out[-1].kind == "op" and out[-1].text in ("=~", "!~"):
            ws = re.compile(r"\s*").match(text, pos)
            pos = ws.end()
            m = _REGEX.match(text, pos)
            if m:
                try:
                    pattern = re.compile(m.group(1).replace("\\/", "/"))
                except re.error as exc:
                    raise InfluxQLSyntaxError(f"invalid regular expression /{m.group(1)}/: {exc}") from None
                out.append(_Tok("regex", m.group(0), pattern))
                pos = m.end()
                continue
        m = _TOKEN.match(text, pos)
        if not m:
            raise InfluxQLSyntaxError(f"found {text[pos:pos + 10]!r} at char {pos + 1}")
        kind, tok = m.lastgroup, m.group(0)
        pos = m.end()
        if kind == "ws":
            continue
        if kind == "qident":
            out.append(_Tok("ident", tok, _unquote(tok[1:-1])))
        elif kind == "ident":
            out.append(_Tok("word", tok, tok))
        elif kind == "string":
            out.append(_Tok("string", tok, _unquote(tok[1:-1])))
        elif kind == "number":
            out.append(_Tok("number", tok, float(tok)))
        elif kind == "integer":
            out.append(_Tok("integer", tok, int(tok)))
        elif kind == "duration":
            out.append(_Tok("duration", tok, _duration_ns(tok)))
        else:
            out.append(_Tok("op", tok, tok))
    out.append(_Tok("eof", "", None))
    return out


# --- parser -----------------------------------------------------------------------------------

_FUNCTIONS = {"count", "first", "last", "max", "min"}
_INFLUX_FUNCTIONS = {"mean", "median", "mode", "spread", "stddev", "sum", "integral", "distinct", "percentile",
                     "sample", "top", "bottom", "derivative", "difference", "non_negative_derivative",
                     "moving_average", "cumulative_sum", "elapsed", "holt_winters", "abs", "round", "now",
                     "non_negative_difference", "floor", "ceil", "pow", "sqrt", "ln", "log", "exp"}
_CLAUSES = {"LIMIT": "LIMIT", "OFFSET": "OFFSET", "SLIMIT": "SLIMIT", "SOFFSET": "SOFFSET",
            "ORDER": "ORDER BY", "FILL": "fill()", "TZ": "tz()", "INTO": "SELECT … INTO"}
_COMPARISONS = {"=", "!=", "<>", "<", "<=", ">", ">=", "=~", "!~"}


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    # helpers
    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def _next(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def _is_word(self, *words: str) -> bool:
        return self.tok.kind == "word" and self.tok.text.upper() in words

    def _word(self, word: str) -> None:
        if not self._is_word(word):
            raise InfluxQLSyntaxError(f"found {self.tok.text or 'EOF'}, expected {word}")
        self.i += 1

    def _op(self, op: str) -> bool:
        if self.tok.kind == "op" and self.tok.text == op:
            self.i += 1
            return True
        return False

    def _ident(self, what: str = "identifier") -> str:
        t = self.tok
        if t.kind in ("ident", "word"):
            self.i += 1
            return str(t.value)
        raise InfluxQLSyntaxError(f"found {t.text or 'EOF'}, expected {what}")

    # statements
    def statements(self) -> list:
        out = []
        while True:
            while self._op(";"):
                pass
            if self.tok.kind == "eof":
                break
            out.append(self.statement())
            if self.tok.kind != "eof" and not (self.tok.kind == "op" and self.tok.text == ";"):
                self._unexpected_tail()
        if not out:
            raise InfluxQLSyntaxError("found EOF, expected SELECT, DELETE, SHOW, CREATE, DROP, EXPLAIN, GRANT, "
                                      "REVOKE, ALTER, SET, KILL")
        return out

    def _unexpected_tail(self) -> None:
        if self.tok.kind == "word" and self.tok.text.upper() in _CLAUSES:
            raise UnsupportedInfluxQL(_CLAUSES[self.tok.text.upper()])
        raise InfluxQLSyntaxError(f"found {self.tok.text}, expected ;")

    def statement(self):
        if self._is_word("SELECT"):
            self.i += 1
            return self.select()
        if self._is_word("SHOW"):
            self.i += 1
            return self.show()
        if self._is_word("CREATE"):
            self.i += 1
            return self.create()
        if self._is_word("ALTER"):
            self.i += 1
            self._word("RETENTION")
            self._word("POLICY")
            return self.policy_statement(alter=True)
        if self._is_word("DROP"):
            self.i += 1
            return self.drop()
        if self.tok.kind == "word" and self.tok.text.upper() in ("DELETE", "EXPLAIN", "GRANT", "REVOKE", "SET",
                                                                   "KILL"):
            raise UnsupportedInfluxQL(self.tok.text.upper())
        raise InfluxQLSyntaxError(f"found {self.tok.text or 'EOF'}, expected SELECT, DELETE, SHOW, CREATE, DROP, "
                                  "EXPLAIN, GRANT, REVOKE, ALTER, SET, KILL")

    def select(self) -> Select:
        fields = [self.select_field()]
        while self._op(","):
            fields.append(self.select_field())
        if self._is_word("INTO"):
            raise UnsupportedInfluxQL("SELECT … INTO")
        self._word("FROM")
        source = self.source()
        if self.tok.kind == "op" and self.tok.text == ",":
            raise UnsupportedInfluxQL("several measurements in FROM")
        condition = None
        if self._is_word("WHERE"):
            self.i += 1
            condition = self.expr()
        group: list[str] = []
        if self._is_word("GROUP"):
            self.i += 1
            self._word("BY")
            group.append(self.dimension())
            while self._op(","):
                group.append(self.dimension())
        return Select(tuple(fields), source, condition, tuple(group))

    def dimension(self) -> str:
        if self._op("*"):
            raise UnsupportedInfluxQL("GROUP BY *")
        if self._is_word("TIME") and self.toks[self.i + 1].text == "(":
            raise UnsupportedInfluxQL("GROUP BY time()")
        if self.tok.kind == "regex" or (self.tok.kind == "op" and self.tok.text == "/"):
            raise UnsupportedInfluxQL("GROUP BY /regex/")
        name = self._ident("tag key")
        if self._op("::"):
            raise UnsupportedInfluxQL("type casts (::)")
        return name

    def select_field(self) -> SelectField:
        if self._op("*"):
            expr: VarRef | Call | Wildcard = Wildcard()
        elif self.tok.kind == "word" and self.toks[self.i + 1].text == "(":
            func = self._next().text.lower()
            self._op("(")
            if func not in _FUNCTIONS:
                if func in _INFLUX_FUNCTIONS:
                    raise UnsupportedInfluxQL(f"{func}()")
                raise InfluxQLSyntaxError(f"undefined function {func}()")
            if self._op("*") or self.tok.kind == "regex" or self.tok.text == "/":
                raise UnsupportedInfluxQL(f"{func}(*) or {func}(/regex/)")
            arg = VarRef(self._ident("field key"))
            if self._op("::"):
                raise UnsupportedInfluxQL("type casts (::)")
            if self.tok.text == ",":
                raise UnsupportedInfluxQL(f"{func}() with several arguments")
            if not self._op(")"):
                raise InfluxQLSyntaxError(f"found {self.tok.text or 'EOF'}, expected )")
            expr = Call(func, arg)
        elif self.tok.kind in ("ident", "word"):
            if self._is_word("FROM", "WHERE", "GROUP"):
                raise InfluxQLSyntaxError(f"found {self.tok.text}, expected identifier, string, number, bool")
            expr = VarRef(self._ident())
            if self._op("::"):
                raise UnsupportedInfluxQL("type casts (::)")
        else:
            raise InfluxQLSyntaxError(f"found {self.tok.text or 'EOF'}, expected identifier, string, number, bool")
        if self.tok.kind == "op" and self.tok.text in ("+", "-", "*", "/", "%"):
            raise UnsupportedInfluxQL("arithmetic in SELECT")
        alias = None
        if self._is_word("AS"):
            self.i += 1
            alias = self._ident("alias")
        return SelectField(expr, alias)

    def source(self) -> Source:
        if self.tok.kind == "regex" or (self.tok.kind == "op" and self.tok.text == "/"):
            raise UnsupportedInfluxQL("FROM /regex/")
        if self._op("("):
            raise UnsupportedInfluxQL("subqueries")
        parts = [self._ident("measurement")]
        while self._op("."):
            if self.tok.kind == "op" and self.tok.text == ".":   # db..measurement: default policy
                parts.append("")
                continue
            parts.append(self._ident("measurement"))
        if len(parts) > 3:
            raise InfluxQLSyntaxError(f"too many segments in {'.'.join(parts)}")
        parts = [None] * (3 - len(parts)) + parts
        return Source(parts[2], parts[1] or None, parts[0] or None)

    def show(self):
        if self._is_word("DATABASES"):
            self.i += 1
            return ShowDatabases()
        if self._is_word("MEASUREMENTS"):
            self.i += 1
            db = self._on()
            if self.tok.kind != "eof" and self.tok.text != ";":
                raise UnsupportedInfluxQL(f"SHOW MEASUREMENTS … {self.tok.text.upper()}")
            return ShowMeasurements(db)
        if self._is_word("RETENTION"):
            self.i += 1
            self._word("POLICIES")
            return ShowRetentionPolicies(self._on())
        raise UnsupportedInfluxQL(f"SHOW {self.tok.text.upper()}")

    def _on(self) -> str | None:
        if self._is_word("ON"):
            self.i += 1
            return self._ident("database")
        return None

    def create(self):
        if self._is_word("DATABASE"):
            self.i += 1
            name = self._ident("database")
            if self._is_word("WITH"):
                raise UnsupportedInfluxQL("CREATE DATABASE … WITH")
            return CreateDatabase(name)
        if self._is_word("RETENTION"):
            self.i += 1
            self._word("POLICY")
            return self.policy_statement(alter=False)
        raise UnsupportedInfluxQL(f"CREATE {self.tok.text.upper()}")

    def _policy_duration(self) -> int:
        if self._is_word("INF"):
            self.i += 1
            return 0
        if self.tok.kind != "duration":
            raise InfluxQLSyntaxError(f"found {self.tok.text or 'EOF'}, expected duration")
        return int(self._next().value)

    def policy_statement(self, *, alter: bool):
        name = self._ident("retention policy")
        self._word("ON")
        db = self._ident("database")
        duration = replication = shard = None
        default = False
        seen = False
        while self.tok.kind == "word":
            word = self.tok.text.upper()
            if word == "DURATION":
                self.i += 1
                duration = self._policy_duration()
            elif word == "REPLICATION":
                self.i += 1
                if self.tok.kind != "integer":
                    raise InfluxQLSyntaxError(f"found {self.tok.text}, expected integer")
                replication = int(self._next().value)
            elif word == "SHARD":
                self.i += 1
                self._word("DURATION")
                shard = self._policy_duration()
            elif word == "DEFAULT":
                self.i += 1
                default = True
            elif word == "NAME":
                raise UnsupportedInfluxQL("CREATE RETENTION POLICY … NAME")
            else:
                break
            seen = True
        if not alter:
            if duration is None or replication is None:
                raise InfluxQLSyntaxError("found EOF, expected DURATION and REPLICATION")
            return CreateRetentionPolicy(name, db, duration, replication, shard, default)
        if not seen:
            raise InfluxQLSyntaxError("found EOF, expected DURATION, REPLICATION, SHARD, DEFAULT")
        return AlterRetentionPolicy(name, db, duration, replication, shard, default)

    def drop(self):
        if self._is_word("SERIES"):
            self.i += 1
            source = condition = None
            if self._is_word("FROM"):
                self.i += 1
                source = self.source()
            if self._is_word("WHERE"):
                self.i += 1
                condition = self.expr()
            if source is None and condition is None:
                raise InfluxQLSyntaxError("DROP SERIES needs FROM or WHERE")
            return DropSeries(source, condition)
        if self._is_word("MEASUREMENT"):
            self.i += 1
            return DropMeasurement(self._ident("measurement"))
        if self._is_word("DATABASE"):
            self.i += 1
            return DropDatabase(self._ident("database"))
        raise UnsupportedInfluxQL(f"DROP {self.tok.text.upper()}")

    # expressions: OR < AND < comparison
    def expr(self):
        lhs = self.and_expr()
        while self._is_word("OR"):
            self.i += 1
            lhs = Binary("OR", lhs, self.and_expr())
        return lhs

    def and_expr(self):
        lhs = self.comparison()
        while self._is_word("AND"):
            self.i += 1
            lhs = Binary("AND", lhs, self.comparison())
        return lhs

    def comparison(self):
        if self._op("("):
            inner = self.expr()
            if not self._op(")"):
                raise InfluxQLSyntaxError(f"found {self.tok.text or 'EOF'}, expected )")
            return inner
        lhs = self.operand()
        t = self.tok
        if not (t.kind == "op" and t.text in _COMPARISONS):
            if t.kind == "op" and t.text in ("+", "-", "*", "/", "%"):
                raise UnsupportedInfluxQL("arithmetic in WHERE")
            raise InfluxQLSyntaxError(f"found {t.text or 'EOF'}, expected comparison operator")
        self.i += 1
        rhs = self.operand()
        if self.tok.kind == "op" and self.tok.text in ("+", "-", "*", "/", "%"):
            raise UnsupportedInfluxQL("arithmetic in WHERE (e.g. now() - 1h)")
        return Binary("!=" if t.text == "<>" else t.text, lhs, rhs)

    def operand(self):
        t = self.tok
        if t.kind == "op" and t.text == "(":
            raise UnsupportedInfluxQL("parenthesised operands")
        if t.kind == "op" and t.text == "-":
            self.i += 1
            n = self._next()
            if n.kind not in ("number", "integer", "duration"):
                raise InfluxQLSyntaxError(f"found {n.text or 'EOF'}, expected number")
            return Literal(DurationLiteral(-n.value) if n.kind == "duration" else -n.value)
        self.i += 1
        if t.kind in ("number", "integer", "string", "regex"):
            return Literal(t.value)
        if t.kind == "duration":
            return Literal(DurationLiteral(int(t.value)))
        if t.kind == "word":
            word = t.text.upper()
            if word in ("TRUE", "FALSE"):
                return Literal(word == "TRUE")
            if self.tok.text == "(":
                raise UnsupportedInfluxQL(f"{t.text.lower()}() in WHERE")
            if word in ("AND", "OR", "GROUP", "WHERE", "FROM"):
                raise InfluxQLSyntaxError(f"found {t.text}, expected identifier, string, number, bool")
        if t.kind in ("ident", "word"):
            if self._op("::"):
                raise UnsupportedInfluxQL("type casts (::)")
            return VarRef(str(t.value))
        raise InfluxQLSyntaxError(f"found {t.text or 'EOF'}, expected identifier, string, number, bool")


@dataclass(frozen=True)
class DurationLiteral:
    """A duration literal in a WHERE clause (ns): only meaningful against ``time``."""

    ns: int

    def __neg__(self) -> "DurationLiteral":
        return DurationLiteral(-self.ns)


def parse(text: str) -> list:
    """The statements of ``text`` (:class:`Select`, :class:`ShowDatabases`…). Raises
    :class:`InfluxQLSyntaxError` or :class:`UnsupportedInfluxQL`."""
    return _Parser(text).statements()


# --- time conditions ----------------------------------------------------------------------------

#: The whole time range (InfluxDB's ``MinTime``/``MaxTime``).
MIN_TIME, MAX_TIME = -9223372036854775806, 9223372036854775806


def time_value(literal: Literal) -> int:
    """A ``time`` operand as epoch ns: an RFC 3339 (or ``YYYY-MM-DD[ HH:MM:SS]``) string, taken as
    UTC when it names no zone, an integer (ns) or a duration literal (ns since the epoch)."""
    v = literal.value
    if isinstance(v, DurationLiteral):
        return v.ns
    if isinstance(v, bool) or isinstance(v, re.Pattern):
        raise InfluxQLSyntaxError(f"invalid operation: time and {type(v).__name__}")
    if isinstance(v, (int, float)):
        return int(v)
    try:
        ts = pd.Timestamp(str(v))
    except ValueError:
        raise InfluxQLSyntaxError(f"invalid time {v!r}") from None
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value)


def split_time(condition) -> tuple[int, int, object | None, int | None]:
    """``(start_ns, end_ns, rest, lower)`` of a WHERE condition: the time range its top-level
    ``AND`` terms on ``time`` allow (both ends inclusive, as InfluxDB keeps them), the condition
    without them (``None`` when nothing is left), and the explicit lower bound (``None`` when the
    query gives none; aggregates are stamped with it). A ``time`` term under ``OR`` raises
    :class:`UnsupportedInfluxQL`."""
    start, end, lower = MIN_TIME, MAX_TIME, None
    rest: list = []

    def terms(node):
        if isinstance(node, Binary) and node.op == "AND":
            yield from terms(node.lhs)
            yield from terms(node.rhs)
        else:
            yield node

    for term in terms(condition) if condition is not None else ():
        if not _mentions_time(term):
            rest.append(term)
            continue
        if not (isinstance(term, Binary) and term.op in ("=", "<", "<=", ">", ">=")):
            raise UnsupportedInfluxQL("time conditions under OR or with !=/=~")
        op, lhs, rhs = term.op, term.lhs, term.rhs
        if isinstance(rhs, VarRef) and rhs.name.lower() == "time":
            lhs, rhs = rhs, lhs
            op = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)
        if not (isinstance(lhs, VarRef) and isinstance(rhs, Literal)):
            raise UnsupportedInfluxQL("comparing time with something other than a literal")
        t = time_value(rhs)
        if op in (">", ">="):
            t = t + 1 if op == ">" else t
            start = max(start, t)
            lower = t if lower is None else max(lower, t)
        elif op in ("<", "<="):
            end = min(end, t - 1 if op == "<" else t)
        else:
            start, end = max(start, t), min(end, t)
            lower = t if lower is None else max(lower, t)
    out = None
    for term in rest:
        out = term if out is None else Binary("AND", out, term)
    return start, end, out, lower


def _mentions_time(node) -> bool:
    if isinstance(node, VarRef):
        return node.name.lower() == "time"
    if isinstance(node, Binary):
        return _mentions_time(node.lhs) or _mentions_time(node.rhs)
    return False


def refs(node) -> set[str]:
    """The names a condition refers to."""
    if isinstance(node, VarRef):
        return {node.name}
    if isinstance(node, Binary):
        return refs(node.lhs) | refs(node.rhs)
    return set()

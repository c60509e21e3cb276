"""Configuration errors an operator can act on: the setting, where its value came from, what is
wrong with it, and what to set instead.

:func:`explain` turns what :class:`vigie.config.Settings` raises (pydantic's ``ValidationError``,
pydantic-settings' ``SettingsError`` for a list that is not JSON, the YAML file's ``ValueError``)
into :class:`SettingProblem` records; the command line prints them (``vigie check`` too).
Secret values are never shown.
"""

from __future__ import annotations

import os
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr, ValidationError
from pydantic.fields import FieldInfo

DOC = "docs/configuration.md"


@dataclass(frozen=True)
class SettingProblem:
    """One bad setting. ``setting``: the variable (``VIGIE_API_PORT``); ``value``: the value as
    given (``None`` when not shown: a secret, or no single value); ``source``: where it was set
    (``environment``, ``.env``, the ``VIGIE_CONFIG`` file, or empty when unknown); ``problem`` and
    ``fix``: what is wrong and what to set instead."""

    setting: str
    value: str | None
    source: str
    problem: str
    fix: str

    def __str__(self) -> str:
        shown = f"{self.setting}={self.value!r}" if self.value is not None else self.setting
        where = f" (set in {self.source})" if self.source else ""
        return f"{shown}{where}: {self.problem}\n  fix: {self.fix}"

    def to_dict(self) -> dict:
        return {"setting": self.setting, "value": self.value, "source": self.source, "problem": self.problem,
                "fix": self.fix}


def explain(exc: Exception) -> list[SettingProblem]:
    """The problems behind ``exc``, raised while reading the settings; one generic problem when
    ``exc`` is of a kind not recognised."""
    from pydantic_settings import SettingsError

    from vigie.config import Settings

    fields = Settings.model_fields
    if isinstance(exc, ValidationError):
        return [_from_pydantic(err, fields) for err in exc.errors()]
    if isinstance(exc, SettingsError):
        match = re.search(r'field "(\w+)"', str(exc))
        name = match.group(1) if match else None
        if name in fields:
            setting = f"VIGIE_{name.upper()}"
            return [SettingProblem(setting, _raw_value(name, fields[name]), _source(name),
                                   "cannot be read: list values in the environment and .env are JSON arrays",
                                   f"{setting}='{_example(name, fields[name])}' ({DOC})")]
    if isinstance(exc, OSError):
        return [SettingProblem("VIGIE_CONFIG", os.environ.get("VIGIE_CONFIG"), "environment",
                               f"cannot be read: {exc.strerror or exc}",
                               "point VIGIE_CONFIG to a readable YAML file, or unset it")]
    text = str(exc)
    setting = text.split("=", 1)[0] if re.match(r"VIGIE_[A-Z_]+=", text) else "VIGIE_CONFIG"
    problem = text.split(": ", 1)[1] if ": " in text and text.startswith(setting) else text
    return [SettingProblem(setting, None, "", problem,
                           f"names and values as in {DOC} (in a VIGIE_CONFIG file: lower case, without VIGIE_)")]


def _from_pydantic(err: dict, fields: dict[str, FieldInfo]) -> SettingProblem:
    name = str(err["loc"][0]) if err.get("loc") else ""
    field = fields.get(name)
    setting = f"VIGIE_{name.upper()}" if name else "VIGIE_*"
    secret = field is not None and _is_secret(field)
    value = None if secret or err.get("input") is None or isinstance(err.get("input"), dict) else str(err["input"])
    msg = err.get("msg", "")
    if err.get("type") == "value_error":
        # Our validators already say "VIGIE_X='value': expected …": keep the "expected …" part.
        msg = msg.removeprefix("Value error, ")
        msg = re.sub(rf"^{setting}=.*?: ", "", msg, count=1)
        expected = (msg.removeprefix("expected ") if msg.startswith("expected ") else
                    msg.removeprefix("not ") if msg.startswith("not ") else None)
        if msg.startswith("expected "):
            msg = "not of the expected form"
    else:
        msg = msg.replace("Input should be", "should be")
        expected = None
    if field is None:
        return SettingProblem(setting, value, "", msg, f"remove it, or name a setting of {DOC}")
    want = expected or _expected(field)
    about = f" — {_short(field.description)}" if field.description else ""
    source = _source(name)
    target = f"{name} in {os.environ['VIGIE_CONFIG']}" if source.startswith("VIGIE_CONFIG") else setting
    return SettingProblem(setting, value, source, msg, f"set {target} to {want}{about} ({DOC})")


def _short(description: str, limit: int = 100) -> str:
    """A setting's description cut at its first clause, or at ``limit`` characters."""
    text = re.split(r"; | \(|: ", description, maxsplit=1)[0]
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + "…"


def _is_secret(field: FieldInfo) -> bool:
    return SecretStr in _types(field.annotation)


def _types(annotation) -> set:
    """The types an annotation admits (``X | None`` → {X, NoneType})."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return set(typing.get_args(annotation))
    return {annotation}


def _bounds(field: FieldInfo) -> str:
    """``field``'s numeric bounds in words, e.g. ``from 1 to 65535`` or ``above 0``."""
    lo = hi = None
    for m in field.metadata:
        for attr, word in (("ge", "at least"), ("gt", "above")):
            if getattr(m, attr, None) is not None:
                lo = f"{word} {getattr(m, attr)}"
        for attr, word in (("le", "at most"), ("lt", "below")):
            if getattr(m, attr, None) is not None:
                hi = f"{word} {getattr(m, attr)}"
    return ", ".join(x for x in (lo, hi) if x)


def _expected(field: FieldInfo) -> str:
    """What ``field`` accepts, in words."""
    kinds = _types(field.annotation) - {type(None)}
    optional = type(None) in _types(field.annotation)
    kind = next(iter(kinds)) if len(kinds) == 1 else None
    bounds = _bounds(field)
    if typing.get_origin(kind) is typing.Literal:
        text = "one of " + ", ".join(str(a) for a in typing.get_args(kind))
    elif kind is bool:
        text = "true or false"
    elif kind is int:
        text = "a whole number" + (f" {bounds}" if bounds else "")
    elif kind is float:
        text = "a number" + (f" {bounds}" if bounds else "")
    elif typing.get_origin(kind) is list:
        text = "a list (a JSON array in the environment, a YAML list in the VIGIE_CONFIG file)"
    elif kind is Path:
        text = "a file or directory path"
    else:
        text = "a valid value"
    return text + (" (or leave it unset)" if optional else "")


def _example(name: str, field: FieldInfo) -> str:
    import json

    default = field.default_factory() if field.default_factory else field.default
    return json.dumps(default if isinstance(default, list) else ["…"])


def _raw_value(name: str, field: FieldInfo) -> str | None:
    if _is_secret(field):
        return None
    env = {k.upper(): v for k, v in os.environ.items()}
    return env.get(f"VIGIE_{name.upper()}")


def _source(name: str) -> str:
    """Where the setting ``name`` was given: the environment, ``.env`` or the VIGIE_CONFIG file
    (the order :class:`vigie.config.Settings` reads them in)."""
    var = f"VIGIE_{name.upper()}"
    if any(k.upper() == var for k in os.environ):
        return "environment"
    try:
        from dotenv import dotenv_values

        if any(k.upper() == var for k in dotenv_values(".env")):
            return ".env"
    except Exception:  # no readable .env: not the source
        pass
    config = os.environ.get("VIGIE_CONFIG")
    if config:
        return f"VIGIE_CONFIG file {config} (key {name})"
    return ""

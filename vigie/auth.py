"""API keys: who may call the HTTP API, in which role, for whom.

A key is issued to one *principal*: a role (:class:`Role`) with the person it belongs to (staff,
residents, caregivers: a ``persons`` id or, for staff, any opaque staff id) and the commune it covers
(staff, grafana). The token handed out once is ``vigie_<key_id>_<secret>``: ``key_id`` (12 hex
digits) is public and names the key in listings and the audit log; ``secret`` is 32 random bytes
(256 bits, URL-safe base64). Only the SHA-256 digest of the secret is stored.

Why SHA-256 and not a slow password hash: slow hashes (bcrypt, Argon2) protect low-entropy human
passwords against guessing. A 256-bit random secret cannot be guessed, so a fast digest is the
accepted practice for API tokens (as GitHub's and Stripe's are stored), and it keeps every request
cheap. The digest is compared in constant time (:func:`hmac.compare_digest`).

Keys expire (optional ``expires_at``), are revoked (``revoked_at``) and rotated (a new key for the
same principal, the old one revoked now or after a grace period). ``last_used_at`` is refreshed at
most once a minute, so reads do not turn into a write per request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from vigie.alerts.models import utcnow
from vigie.db import Base, UTCDateTime
from vigie.registry import Person

TOKEN_PREFIX = "vigie"
_LAST_USED_EVERY = timedelta(minutes=1)


class Role(StrEnum):
    STAFF = "staff"          # everything of their commune, acknowledges alerts
    RESIDENT = "resident"    # the meters and alerts of their own household(s)
    CAREGIVER = "caregiver"  # alerts and minimal status of the homes they care for
    GRAFANA = "grafana"      # read-only dashboards of a commune, no personal details


#: Roles whose keys must name a registered person (``persons`` table).
PERSON_ROLES = (Role.RESIDENT, Role.CAREGIVER)
#: Roles whose keys must name a commune.
COMMUNE_ROLES = (Role.STAFF, Role.GRAFANA)


class ApiKey(Base):
    __tablename__ = "api_keys"
    key_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))   # hex digest of the secret, never the secret
    role: Mapped[str] = mapped_column(String(20))
    person_id: Mapped[str | None] = mapped_column(String(64), index=True)
    commune: Mapped[str | None] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(String(100))   # what the key is for, e.g. "grafana prod"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    replaced_by: Mapped[str | None] = mapped_column(String(24))   # key id of its rotation


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: ``key_id``, ``role``, ``person_id`` (None for grafana) and
    ``commune`` (None for residents and caregivers)."""

    key_id: str
    role: Role
    person_id: str | None
    commune: str | None


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A newly created key: ``token`` is shown once and never stored."""

    key_id: str
    token: str
    principal: Principal
    expires_at: datetime | None


class UnknownKeyError(LookupError):
    """No API key has this id."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_token(token: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a ``vigie_<key_id>_<secret>`` token, or None if malformed."""
    prefix, sep, rest = token.partition("_")
    key_id, sep2, secret = rest.partition("_")
    if prefix != TOKEN_PREFIX or not sep or not sep2 or not key_id or not secret:
        return None
    return key_id, secret


def create_key(session: Session, role: Role | str, *, person_id: str | None = None,
               commune: str | None = None, label: str | None = None,
               expires_at: datetime | None = None, now: datetime | None = None) -> IssuedKey:
    """Issue a key and commit. Residents and caregivers need a registered ``person_id``; staff a
    ``person_id`` (recorded as acknowledger) and a ``commune``; grafana a ``commune`` and no person.

    Raises ``ValueError`` for a missing or unknown person, a missing commune or an unknown role.
    """
    role = Role(role)
    if role in PERSON_ROLES:
        if not person_id:
            raise ValueError(f"a {role} key needs --person")
        if session.get(Person, person_id) is None:
            raise ValueError(f"person {person_id} is not in the registry")
        commune = None
    if role is Role.STAFF and not person_id:
        raise ValueError("a staff key needs --person (the staff member's id, recorded when they acknowledge)")
    if role in COMMUNE_ROLES and not commune:
        raise ValueError(f"a {role} key needs --commune")
    if role is Role.GRAFANA and person_id:
        raise ValueError("a grafana key belongs to no person")
    now = now or utcnow()
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    session.add(ApiKey(key_id=key_id, secret_sha256=_digest(secret), role=str(role), person_id=person_id,
                       commune=commune, label=label, created_at=now, expires_at=expires_at))
    session.commit()
    return IssuedKey(key_id, f"{TOKEN_PREFIX}_{key_id}_{secret}", Principal(key_id, role, person_id, commune),
                     expires_at)


def authenticate(session: Session, token: str, now: datetime | None = None) -> Principal | None:
    """The principal of a valid token, or None (malformed, unknown, wrong secret, revoked, expired).

    Commits a ``last_used_at`` refresh when the previous one is over a minute old.
    """
    parsed = parse_token(token)
    if parsed is None:
        return None
    key_id, secret = parsed
    key = session.get(ApiKey, key_id)
    # Compare even when the key is unknown, so timing does not tell which key ids exist.
    stored = key.secret_sha256 if key is not None else "0" * 64
    if not hmac.compare_digest(stored, _digest(secret)) or key is None:
        return None
    now = now or utcnow()
    if key.revoked_at is not None and key.revoked_at <= now:
        return None
    if key.expires_at is not None and key.expires_at <= now:
        return None
    if key.last_used_at is None or now - key.last_used_at >= _LAST_USED_EVERY:
        key.last_used_at = now
        session.commit()
    return Principal(key.key_id, Role(key.role), key.person_id, key.commune)


def list_keys(session: Session) -> list[ApiKey]:
    """Every key, newest first (digests included: callers print the other columns only)."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.key_id)))


def key_id_of(value: str) -> str:
    """The key id of ``value``, a key id or a whole token (pasted by mistake: its secret is never
    echoed back in an error)."""
    parsed = parse_token(value)
    return parsed[0] if parsed else value


def revoke_key(session: Session, key_id: str, at: datetime | None = None) -> ApiKey:
    """Revoke ``key_id`` at ``at`` (default now; a future time leaves it valid until then); commits.

    An earlier revocation is kept. Raises :class:`UnknownKeyError` for an unknown id.
    """
    key_id = key_id_of(key_id)
    key = session.get(ApiKey, key_id)
    if key is None:
        raise UnknownKeyError(f"no API key {key_id}")
    at = at or utcnow()
    if key.revoked_at is None or key.revoked_at > at:
        key.revoked_at = at
    session.commit()
    return key


def rotate_key(session: Session, key_id: str, grace: timedelta = timedelta(0),
               now: datetime | None = None) -> IssuedKey:
    """A new key for the same principal (same role, person, commune, label, remaining lifetime); the
    old key is revoked after ``grace`` (default at once). Commits.

    Raises :class:`UnknownKeyError` for an unknown id, ``ValueError`` if the key is already revoked.
    """
    now = now or utcnow()
    key_id = key_id_of(key_id)
    old = session.get(ApiKey, key_id)
    if old is None:
        raise UnknownKeyError(f"no API key {key_id}")
    if old.revoked_at is not None and old.revoked_at <= now:
        raise ValueError(f"API key {key_id} is revoked; create a new one instead")
    expires_at = None
    if old.expires_at is not None:
        expires_at = now + (old.expires_at - old.created_at)
    new = create_key(session, old.role, person_id=old.person_id, commune=old.commune, label=old.label,
                     expires_at=expires_at, now=now)
    old.replaced_by = new.key_id
    revoke_key(session, key_id, at=now + grace)
    return new

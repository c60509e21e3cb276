"""One-click acknowledgement links in messages: signed, expiring, single-use tokens.

A token carries ``{"a": alert id, "p": recipient person id, "j": random token id}`` — plus
``"k": "home"`` for a home (assisted-living) alert; without ``k`` it names a water alert, so links
issued before home alerts existed keep working — signed with
itsdangerous (HMAC-SHA256 over the payload and a timestamp, key ``settings.secret_key``). It expires
``settings.ack_link_ttl_h`` hours after it was issued (default 72 h). It is single-use: its id is
inserted into ``ack_links_used`` (primary key) when it acknowledges, so a second use — even two at
the same instant — is refused by the database. Used ids older than any valid token are pruned.

The link is ``{settings.public_url}/ack/{token}``; without ``public_url`` messages carry no link.
Opening it (GET) only shows a confirmation page; the button there POSTs — see :mod:`vigie.api.app`.

Secret key: ``VIGIE_SECRET_KEY``, or else a random key generated once into
``VIGIE_DATA_DIR/secret_key`` with mode 0600 and reused. Changing it invalidates every link out.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import Integer, String, delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from vigie.alerts.models import Alert, HomeAlert, utcnow
from vigie.alerts.router import AlertNotFoundError, AlertResolvedError, AlertRouter, RouterSettings
from vigie.audit import Actor, AuditAction, record
from vigie.db import Base, UTCDateTime
from vigie.private_files import make_private_dir

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
_SALT = "vigie.ack-link.v1"
SECRET_FILE = "secret_key"


class LinkSettings(RouterSettings, Protocol):
    """The settings links read (a :class:`vigie.config.Settings` fits)."""

    ack_link_ttl_h: float
    public_url: str | None


class UsedAckLink(Base):
    """The id of a link that has been used; its presence refuses the link from then on."""

    __tablename__ = "ack_links_used"
    jti: Mapped[str] = mapped_column(String(32), primary_key=True)
    alert_id: Mapped[int] = mapped_column(Integer)
    alert_type: Mapped[str] = mapped_column(String(10), default="water", server_default="water")
    person_id: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class AlertType(StrEnum):
    WATER = "water"   # an Alert of the leak router
    HOME = "home"     # a HomeAlert of the escalation engine


class LinkState(StrEnum):
    VALID = "valid"                # may acknowledge
    ACKNOWLEDGED = "acknowledged"  # this use acknowledged the alert (or it already was)
    RESOLVED = "resolved"          # the alert is closed: nothing left to acknowledge
    USED = "used"                  # the link has been used before
    EXPIRED = "expired"
    INVALID = "invalid"            # forged, altered, truncated, or its alert no longer exists


@dataclass(frozen=True, slots=True)
class LinkCheck:
    """What a token is worth: ``state`` and, when the signature holds, the alert (with its type)
    and person ids."""

    state: LinkState
    alert_id: int | None = None
    person_id: str | None = None
    alert_type: AlertType = AlertType.WATER


def load_secret_key(secret_key: str | None, data_dir: Path) -> bytes:
    """``secret_key`` if set, else the key in ``data_dir/secret_key``, created (0600) when absent."""
    if secret_key:
        return secret_key.encode()
    path = Path(data_dir) / SECRET_FILE
    make_private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text(encoding="ascii").strip()
        if not key:
            raise ValueError(f"{path} is empty: delete it to generate a new key, or set VIGIE_SECRET_KEY")
        return key.encode()
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key + "\n")
    log.info("generated the link-signing key in %s", path)
    return key.encode()


def secret_key_for(settings) -> bytes:
    """The signing key for a :class:`vigie.config.Settings`."""
    return load_secret_key(settings.secret_key.get_secret_value() if settings.secret_key else None,
                           settings.data_dir)


class AckLinks:
    """Issues and redeems acknowledgement links. ``clock`` returns aware UTC (tests pass a fake)."""

    def __init__(self, secret: bytes, settings: LinkSettings, clock: Clock = utcnow) -> None:
        self._settings = settings
        self._ttl = timedelta(hours=settings.ack_link_ttl_h)
        self._clock = clock

        class _Signer(TimestampSigner):
            def get_timestamp(self) -> int:  # itsdangerous reads time.time(); the clock drives tests
                return int(clock().timestamp())

        self._serializer = URLSafeTimedSerializer(secret, salt=_SALT, signer=_Signer)

    def issue(self, alert_id: int, person_id: str, alert_type: AlertType = AlertType.WATER) -> str:
        """A new token for ``person_id`` to acknowledge ``alert_id`` (a water or home alert)."""
        payload = {"a": alert_id, "p": person_id, "j": secrets.token_hex(16)}
        if AlertType(alert_type) is AlertType.HOME:
            payload["k"] = str(AlertType.HOME)
        return self._serializer.dumps(payload)

    def url(self, alert_id: int, person_id: str, alert_type: AlertType = AlertType.WATER) -> str | None:
        """``{public_url}/ack/{token}``, or None when ``public_url`` is not set."""
        base = self._settings.public_url
        return f"{base.rstrip('/')}/ack/{self.issue(alert_id, person_id, alert_type)}" if base else None

    def _decode(self, token: str) -> tuple[LinkCheck, str | None]:
        try:
            payload = self._serializer.loads(token, max_age=int(self._ttl.total_seconds()))
        except SignatureExpired:
            return LinkCheck(LinkState.EXPIRED), None
        except BadSignature:
            return LinkCheck(LinkState.INVALID), None
        try:
            alert_id, person_id, jti = int(payload["a"]), str(payload["p"]), str(payload["j"])
            alert_type = AlertType(payload.get("k", AlertType.WATER))
        except (TypeError, KeyError, ValueError, AttributeError):
            return LinkCheck(LinkState.INVALID), None
        return LinkCheck(LinkState.VALID, alert_id, person_id, alert_type), jti

    def check(self, sessions: sessionmaker, token: str) -> LinkCheck:
        """What ``token`` is worth now, without using it (the GET confirmation page)."""
        check, jti = self._decode(token)
        if check.state is not LinkState.VALID:
            return check
        with sessions() as s:
            alert = s.get(HomeAlert if check.alert_type is AlertType.HOME else Alert, check.alert_id)
            if alert is None:
                return LinkCheck(LinkState.INVALID)
            if s.get(UsedAckLink, jti) is not None:
                return LinkCheck(LinkState.USED, check.alert_id, check.person_id, check.alert_type)
            if alert.status == "resolved":
                return LinkCheck(LinkState.RESOLVED, check.alert_id, check.person_id, check.alert_type)
        return check

    def redeem(self, sessions: sessionmaker, token: str) -> LinkCheck:
        """Use ``token``: acknowledge its alert as its person and write the audit event.

        The link is spent first (insert of its id, committed), then the alert acknowledged, so two
        concurrent uses cannot both pass. Returns the resulting state.
        """
        check = self.check(sessions, token)
        if check.state is not LinkState.VALID:
            return check
        _, jti = self._decode(token)
        now = self._clock()
        with sessions() as s:
            s.execute(delete(UsedAckLink).where(UsedAckLink.used_at < now - self._ttl - timedelta(days=1)))
            s.add(UsedAckLink(jti=jti, alert_id=check.alert_id, alert_type=str(check.alert_type),
                              person_id=check.person_id, used_at=now))
            try:
                s.commit()
            except IntegrityError:
                return LinkCheck(LinkState.USED, check.alert_id, check.person_id, check.alert_type)
        if check.alert_type is AlertType.HOME:
            return self._redeem_home(sessions, check, now)
        try:
            AlertRouter(sessions, self._settings, clock=self._clock).acknowledge(check.alert_id, check.person_id)
        except AlertResolvedError:
            return LinkCheck(LinkState.RESOLVED, check.alert_id, check.person_id)
        except AlertNotFoundError:
            return LinkCheck(LinkState.INVALID)
        with sessions() as s:
            alert = s.get(Alert, check.alert_id)
            record(s, Actor(None, "recipient", check.person_id), AuditAction.ACKNOWLEDGE,
                   household_id=alert.household_id, meter_id=alert.meter_id, alert_id=alert.id, via="link", at=now)
            s.commit()
        return LinkCheck(LinkState.ACKNOWLEDGED, check.alert_id, check.person_id)

    def _redeem_home(self, sessions: sessionmaker, check: LinkCheck, now: datetime) -> LinkCheck:
        from vigie.alerts.escalation import Escalation

        try:
            alert = Escalation(sessions, self._settings, clock=self._clock).acknowledge(check.alert_id,
                                                                                        check.person_id)
        except AlertResolvedError:
            return LinkCheck(LinkState.RESOLVED, check.alert_id, check.person_id, check.alert_type)
        except AlertNotFoundError:
            return LinkCheck(LinkState.INVALID)
        with sessions() as s:
            record(s, Actor(None, "recipient", check.person_id), AuditAction.ACKNOWLEDGE_HOME_ALERT,
                   household_id=alert.household_id, alert_id=alert.id, via="link", at=now)
            s.commit()
        return LinkCheck(LinkState.ACKNOWLEDGED, check.alert_id, check.person_id, check.alert_type)

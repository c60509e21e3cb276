"""Delivery of queued notifications through Apprise, with retries and an attempt log.

:meth:`Deliverer.deliver_due` sends every pending :class:`~vigie.alerts.models.Notification` whose
``next_attempt_at`` has come. For each, the person's channels are:

- e-mail, when the person has an address and ``settings.smtp_url`` is set: the address is added to
  that Apprise mail URL as ``to=``. For an SMTP server without authentication or TLS on a custom port
  (a local relay), the form is ``mailto://HOST:PORT?from=SENDER`` — e.g.
  ``mailto://127.0.0.1:2525?from=vigie@commune.example``: ``mailto://`` (not ``mailtos://``) means
  no TLS and no STARTTLS (Apprise's ``mode=insecure``), no ``user:password@`` means no AUTH, ``HOST``
  given as an IP or host name is the SMTP server itself (``smtp=HOST`` forces it if Apprise would
  guess a provider from the host), and ``from=`` sets the sender. With a relay
  that needs them: ``mailtos://USER:PASSWORD@HOST:587?from=SENDER`` (STARTTLS) or ``?mode=ssl``
  (implicit TLS, port 465). ``format=text`` is added unless the URL sets a format, so residents get
  plain-text mail. With no relay at all, ``outbox:///DIR`` writes each e-mail to a file in ``DIR``
  instead (:mod:`vigie.alerts.outbox`; what ``vigie demo`` uses when ``smtp_url`` is unset).
- every extra Apprise URL of the person (``Person.channels``, space-separated: ``ntfy://…`` etc.).

For a home (assisted-living) alert, the person's ``notify`` preference for the alert's severity
replaces that default when set (:func:`channel_urls`: ``email`` and Apprise URLs), and the message is
:func:`~vigie.alerts.messages.render_home`'s, with the event's one-line evidence.

When ``settings.public_url`` is set, each opened/reminder/escalation message carries the recipient's
own one-click acknowledgement link to the water or home alert (signed, expiring, single-use:
:mod:`vigie.alerts.acklinks`), made afresh at each attempt.

One Apprise object per notification; each channel is notified and logged on its own
(:class:`~vigie.alerts.models.DeliveryAttempt`, ``channel`` = URL scheme only, errors with
addresses and URLs masked; a filter masks them in Apprise's own log records too). A notification is
*sent* as soon as one channel accepts it (the person has been reached; failed channels stay in the
log). Otherwise it is retried after ``delivery_backoff_s × 2^(attempts−1)`` seconds, capped at
``settings.delivery_backoff_max_s`` (default 6 h), until ``delivery_max_attempts`` attempts, then
marked *failed*. A person with no
channel at all is failed at once with the reason ``no channel``.

Concurrency: run it from one process's scheduler. Within a process, runs are serialised by a
process-wide lock, so overlapping scheduler jobs or threads never send a notification twice. Each
notification is also claimed by a conditional UPDATE (which pushes ``next_attempt_at`` a lease ahead)
before it is sent; this keeps a second process from picking the same row, but several delivering
processes are not a supported set-up. Delivery is at-least-once: a crash between the send and the
commit that records it sends that notification again once the lease has passed.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from urllib.parse import quote, urlsplit

import apprise
from sqlalchemy import select, update
from sqlalchemy.orm import sessionmaker

from vigie.alerts import outbox as _outbox  # noqa: F401  registers Apprise's outbox:// scheme (local files)
from vigie.alerts.acklinks import AckLinks, AlertType, secret_key_for
from vigie.alerts.digest import StaffDigest, digest_findings
from vigie.alerts.messages import Message, pick_language, render, render_digest, render_home
from vigie.alerts.models import (Alert, DeliveryAttempt, DeliveryStatus, EscalationStep, HomeAlert, Notification,
                                 utcnow)
from vigie.alerts.router import as_utc
from vigie.metrics import DELIVERY_SECONDS, NOTIFICATION_ATTEMPTS, NOTIFICATIONS
from vigie.registry import EMAIL_CHANNEL, Person

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# How long a claimed notification is hidden from other runs while it is being sent: longer than any
# send (Apprise's connect timeout is 15 s per channel), short enough to retry soon after a crash.
CLAIM_LEASE = timedelta(minutes=10)
NO_CHANNEL = "no channel"

_RUN_LOCK = threading.Lock()
_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL_RE = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)


class DeliverySettings(Protocol):
    """The settings delivery reads (a :class:`vigie.config.Settings` fits; ``smtp_url``,
    ``delivery_backoff_max_s`` and ``public_url`` — with ``secret_key``, ``data_dir`` and
    ``ack_link_ttl_h`` for links — are read when present)."""

    language: str
    water_price_eur_per_m3: float
    burst_min_duration_min: float
    delivery_max_attempts: int
    delivery_backoff_s: float


@dataclass
class DeliveryOutcome:
    """What one :meth:`Deliverer.deliver_due` run did: notifications ``sent``, scheduled for a
    ``retry``, and ``failed`` for good."""

    sent: int = 0
    retry: int = 0
    failed: int = 0


@dataclass(frozen=True)
class _Job:
    notification_id: int
    attempts: int
    message: Message | None   # None when it could not be built: see ``error``
    urls: list[str]
    error: str | None = None


def scheme(url: str) -> str:
    """The scheme of an Apprise URL (``mailto``, ``ntfy``…), the only part of it ever logged."""
    return urlsplit(url).scheme.lower() or "unknown"


def mask(text: str) -> str:
    """``text`` with e-mail addresses and URLs replaced, so it can be stored and logged."""
    return _EMAIL_RE.sub("<address>", _URL_RE.sub("<url>", text))


class _MaskingFilter(logging.Filter):
    """Masks addresses and URLs in Apprise's own log records (it logs recipients at INFO)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = mask(record.getMessage()), None
        return True


def _mask_apprise_log() -> None:
    apprise_log = logging.getLogger("apprise")
    if not any(isinstance(f, _MaskingFilter) for f in apprise_log.filters):
        apprise_log.addFilter(_MaskingFilter())


def channel_urls(person: Person, smtp_url: str | None, severity: str | None = None) -> list[str]:
    """The Apprise URLs to reach ``person``: for ``severity`` their ``notify`` list when it names
    that severity (``email`` = their address through ``smtp_url``), else their e-mail (when both
    address and ``smtp_url`` exist) and every URL of ``Person.channels``. May be empty."""
    wanted = (person.notify or {}).get(severity) if severity else None
    if wanted is None:
        wanted = [EMAIL_CHANNEL, *(person.channels or "").split()]
    urls = []
    for channel in wanted:
        if channel != EMAIL_CHANNEL:
            urls.append(channel)
        elif person.email and smtp_url:
            urls.append(email_url(smtp_url, person.email))
    return urls


def email_url(smtp_url: str, address: str) -> str:
    """The Apprise mail URL sending to ``address`` through ``smtp_url`` (plain text unless set)."""
    sep = "&" if "?" in smtp_url else "?"
    url = f"{smtp_url}{sep}to={quote(address, safe='@')}"
    if "format=" not in smtp_url:
        url += "&format=text"
    return url


class Deliverer:
    """Sends due notifications. ``sessionmaker`` from :func:`vigie.db.make_sessionmaker`;
    ``clock`` returns the current time, aware UTC (tests drive a fake one)."""

    def __init__(self, sessionmaker: sessionmaker, settings: DeliverySettings, clock: Clock = utcnow) -> None:
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._clock = clock
        self._smtp_url: str | None = settings.smtp_url
        self._links = AckLinks(secret_key_for(settings), settings, clock) if settings.public_url else None
        self._backoff_max_s: float = settings.delivery_backoff_max_s
        _mask_apprise_log()

    def deliver_due(self, now: datetime | None = None) -> DeliveryOutcome:
        """Try every pending notification due at ``now`` (default: the clock) once."""
        now = as_utc(now or self._clock())
        outcome = DeliveryOutcome()
        with _RUN_LOCK:
            with self._sessionmaker() as session:
                due = list(session.scalars(
                    select(Notification.id)
                    .where(Notification.status == DeliveryStatus.PENDING, Notification.next_attempt_at <= now)
                    .order_by(Notification.next_attempt_at, Notification.id)))
            for notification_id in due:
                if not self._claim(notification_id, now):
                    continue
                job = self._prepare(notification_id)
                results = self._send(job.message, job.urls) if job.message else [("none", job.error)]
                status = self._record(job, results, now)
                NOTIFICATIONS.labels("sent" if status == DeliveryStatus.SENT else
                                     "failed" if status == DeliveryStatus.FAILED else "retry").inc()
                for channel, error in results or [("none", NO_CHANNEL)]:
                    NOTIFICATION_ATTEMPTS.labels(channel, "failed" if error else "sent").inc()
                if status == DeliveryStatus.SENT:
                    outcome.sent += 1
                elif status == DeliveryStatus.FAILED:
                    outcome.failed += 1
                else:
                    outcome.retry += 1
        return outcome

    def _claim(self, notification_id: int, now: datetime) -> bool:
        with self._sessionmaker() as session:
            claimed = session.execute(
                update(Notification)
                .where(Notification.id == notification_id, Notification.status == DeliveryStatus.PENDING,
                       Notification.next_attempt_at <= now)
                .values(next_attempt_at=now + CLAIM_LEASE)).rowcount
            session.commit()
        return claimed == 1

    def _prepare(self, notification_id: int) -> _Job:
        """The message and channel URLs for a claimed notification, read in a short session so no
        transaction stays open while sending."""
        with self._sessionmaker() as session:
            notification = session.get(Notification, notification_id)
            person = session.get(Person, notification.person_id)
            lang = pick_language(person.language if person else None, self._settings)
            if notification.home_alert_id is not None:
                return self._prepare_home(session, notification, person, lang)
            if notification.digest_id is not None:
                return self._prepare_digest(session, notification, person, lang)
            alert = session.get(Alert, notification.alert_id)
            urls: list[str] = []
            if person is not None:
                if person.email and not self._smtp_url:
                    log.warning("person %s has an e-mail address but smtp_url is not set", person.id)
                urls = channel_urls(person, self._smtp_url)
            try:
                link = self._links.url(alert.id, notification.person_id) if self._links else None
                message = render(alert, notification.reason, lang, self._settings, link)
            except ValueError as exc:  # e.g. a rule kind with no text yet: retried, then failed
                log.error("notification %d (alert %d): cannot build the message: %s",
                          notification_id, alert.id, exc)
                return _Job(notification_id, notification.attempts, None, urls,
                            error=f"cannot build the message: {exc}")
            return _Job(notification_id, notification.attempts, message, urls)

    def _prepare_home(self, session, notification: Notification, person: Person | None, lang: str) -> _Job:
        alert = session.get(HomeAlert, notification.home_alert_id)
        urls = channel_urls(person, self._smtp_url, alert.severity) if person is not None else []
        step = None
        if (notification.step or "").startswith("s"):
            step = session.scalars(select(EscalationStep).where(
                EscalationStep.home_alert_id == alert.id,
                EscalationStep.step_no == int(notification.step[1:]))).one_or_none()
        try:
            link = (self._links.url(alert.id, notification.person_id, AlertType.HOME)
                    if self._links and alert.status == "open" else None)
            message = render_home(alert, notification.reason, lang, self._settings.timezone, link, step)
        except ValueError as exc:
            log.error("notification %d (home alert %d): cannot build the message: %s",
                      notification.id, alert.id, exc)
            return _Job(notification.id, notification.attempts, None, urls, error=f"cannot build the message: {exc}")
        return _Job(notification.id, notification.attempts, message, urls)

    def _prepare_digest(self, session, notification: Notification, person: Person | None, lang: str) -> _Job:
        digest = session.get(StaffDigest, notification.digest_id)
        urls = channel_urls(person, self._smtp_url) if person is not None else []
        new, still_open = digest_findings(session, digest)
        message = render_digest(digest, new, still_open, lang, self._settings.timezone)
        return _Job(notification.id, notification.attempts, message, urls)

    @staticmethod
    def _send(message: Message, urls: list[str]) -> list[tuple[str, str | None]]:
        """Notify each channel through one Apprise object, each under its own tag so every channel
        gets its own outcome; returns (channel scheme, masked error or None on success) per URL."""
        apobj = apprise.Apprise(asset=apprise.AppriseAsset(app_id="Vigie", app_desc="Vigie water alerts"))
        results = []
        for i, url in enumerate(urls):
            tag = f"channel-{i}"
            if not apobj.add(url, tag=tag):
                results.append((scheme(url), "invalid Apprise URL"))
                continue
            with apprise.LogCapture(level=logging.DEBUG, fmt="%(levelname)s %(message)s") as captured:
                ok = apobj.notify(body=message.body, title=message.subject, tag=tag,
                                  body_format=apprise.NotifyFormat.TEXT)
            if ok:
                results.append((scheme(url), None))
                continue
            # Apprise reports why through its log: keep the warnings and the exception text.
            lines = [line for line in captured.getvalue().splitlines()
                     if line.startswith(("WARNING", "ERROR")) or "Exception" in line]
            results.append((scheme(url), mask("; ".join(lines) or "not delivered")[:1000]))
        return results

    def _record(self, job: _Job, results: list[tuple[str, str | None]], now: datetime) -> DeliveryStatus:
        with self._sessionmaker() as session:
            notification = session.get(Notification, job.notification_id)
            notification.attempts = job.attempts + 1
            if not results:
                session.add(DeliveryAttempt(notification_id=notification.id, at=now, channel="none",
                                            outcome="failed", error=NO_CHANNEL))
                notification.status = DeliveryStatus.FAILED
                notification.last_error = NO_CHANNEL
                log.warning("notification %d (person %s): %s", notification.id, notification.person_id, NO_CHANNEL)
            for channel, error in results:
                session.add(DeliveryAttempt(notification_id=notification.id, at=now, channel=channel,
                                            outcome="failed" if error else "sent", error=error))
            errors = [f"{channel}: {error}" for channel, error in results if error]
            if results and len(errors) < len(results):
                notification.status = DeliveryStatus.SENT
                notification.sent_at = now
                DELIVERY_SECONDS.observe(max(0.0, (now - as_utc(notification.created_at)).total_seconds()))
                notification.last_error = "; ".join(errors) or None
                log.info("notification %d (%s %d, %s) sent to person %s", notification.id,
                         "digest" if notification.digest_id else
                         "home alert" if notification.home_alert_id else "water alert",
                         notification.digest_id or notification.home_alert_id or notification.alert_id,
                         notification.reason, notification.person_id)
            elif results:
                notification.last_error = "; ".join(errors)
                if notification.attempts >= self._settings.delivery_max_attempts:
                    notification.status = DeliveryStatus.FAILED
                    log.warning("notification %d (person %s) failed after %d attempts: %s", notification.id,
                                notification.person_id, notification.attempts, notification.last_error)
                else:
                    delay = min(self._settings.delivery_backoff_s * 2 ** (notification.attempts - 1),
                                self._backoff_max_s)
                    notification.next_attempt_at = now + timedelta(seconds=delay)
                    log.info("notification %d attempt %d failed; retry in %.0f s", notification.id,
                             notification.attempts, delay)
            status = DeliveryStatus(notification.status)
            session.commit()
            return status

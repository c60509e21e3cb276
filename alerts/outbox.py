"""A local outbox: an Apprise notification scheme, ``outbox://``, that writes each message to a file.

For a machine with no mail relay or channel (``vigie demo``, a trial): ``VIGIE_SMTP_URL=outbox:///ABS/DIR``
makes every e-mail the delivery would send (:mod:`vigie.alerts.delivery` adds ``?to=ADDRESS``) an
RFC 5322 message file in ``/ABS/DIR`` instead — the same messages, recipients and attempt log as with
SMTP, readable with any mail client or ``cat``. A person's extra channel may be an ``outbox://`` URL
too (no ``to=``: the file has no To header).

Files: ``<UTC time>-<sequence>-<recipient>.eml`` (``YYYYmmddTHHMMSS.ffffff``, the recipient with
characters outside ``[A-Za-z0-9@._-]`` replaced), written whole then renamed into place (a reader
never sees half a message), mode 0600 in a 0700 directory: they hold addresses and alert details.

The scheme is registered with Apprise's ``@notify`` decorator (Apprise ≥ 1.4, custom notifications)
when this module is imported; :mod:`vigie.alerts.delivery` imports it. The URL must be absolute
(``outbox:///…``): Apprise reads the first path segment as a host, which is put back here. A file
that cannot be written makes the notification fail for that channel (retried like an SMTP error).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import threading
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from urllib.parse import unquote

from apprise.decorators import notify

log = logging.getLogger(__name__)

SCHEME = "outbox"
SENDER = "Vigie <vigie@localhost>"
_SEQ = itertools.count(1)
_LOCK = threading.Lock()
_UNSAFE = re.compile(r"[^A-Za-z0-9@._-]")


def outbox_url(directory: Path | str) -> str:
    """The ``outbox://`` URL of ``directory`` (made absolute)."""
    return f"{SCHEME}://{Path(directory).resolve().as_posix()}"


def outbox_dir(meta: dict) -> Path:
    """The directory an ``outbox://`` URL names (Apprise's parsed ``meta``). ValueError when the
    URL names none."""
    host = meta.get("host") or ""
    if not host:
        raise ValueError("outbox URL without a directory: expected outbox:///absolute/directory")
    return Path("/" + unquote(host) + unquote(meta.get("fullpath") or ""))


def write_message(directory: Path, to: str | None, subject: str, body: str, notify_type: str = "info") -> Path:
    """Write one message file (module docstring) and return its path. Raises OSError."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = datetime.now(timezone.utc)
    msg = EmailMessage()
    msg["From"] = SENDER
    if to:
        msg["To"] = to
    msg["Subject"] = subject or "(Vigie)"
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain="vigie.localhost")
    msg["X-Vigie-Notify-Type"] = str(notify_type)
    msg.set_content(body or "", cte="8bit")   # readable as it is (cat, less), UTF-8
    with _LOCK:
        seq = next(_SEQ)
    name = f"{now:%Y%m%dT%H%M%S.%f}-{os.getpid()}-{seq:06d}-{_UNSAFE.sub('_', to or 'channel')}.eml"
    final = directory / name
    tmp = directory / f".{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(msg.as_bytes())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    return final


def read_outbox(directory: Path | str) -> list[EmailMessage]:
    """The messages of an outbox, oldest first (parsed with the modern e-mail policy)."""
    from email import message_from_bytes, policy

    d = Path(directory)
    if not d.is_dir():
        return []
    return [message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted(d.glob("*.eml"))]


@notify(on=SCHEME, name="Vigie local outbox")
def _deliver(body: str, title: str, notify_type, meta: dict, *args, **kwargs) -> bool:
    try:
        to = (meta.get("qsd") or {}).get("to")
        write_message(outbox_dir(meta), to, title, body, getattr(notify_type, "value", notify_type))
        return True
    except OSError as exc:   # its text would carry the file name, hence the address
        log.error("outbox: cannot write the message (%s)", exc.strerror or type(exc).__name__)
        return False
    except ValueError as exc:
        log.error("outbox: %s", exc)
        return False

"""Vigie's on-disk state kept to its own user: ``VIGIE_DATA_DIR`` is created with mode 0700 and the
files Vigie keeps there (spool, dead letters, link-signing key) have mode 0600 — a dead letter holds
a whole payload, and a topic's zigbee2mqtt friendly name may name a person (docs/security.md,
"Files on disk").

A directory that already exists keeps the mode an operator gave it; Vigie's own files are tightened
to 0600 even when an earlier version created them readable by others.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600

log = logging.getLogger(__name__)


def make_private_dir(path: Path) -> Path:
    """Create ``path`` and each missing parent with mode 0700 (narrower if the umask says so);
    existing directories are left as they are. Returns ``path``."""
    path = Path(path)
    missing = []
    d = path
    while not d.exists() and d != d.parent:
        missing.append(d)
        d = d.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=DIR_MODE)
        except FileExistsError:  # another worker process created it first, with the same mode
            pass
    return path


def open_private(path: Path, flags: int) -> int:
    """``os.open(path, flags | O_CREAT)``: a new file gets mode 0600, an existing one is tightened
    to 0600 (a warning, not an error, when this user may not: the data stays writable)."""
    fd = os.open(path, flags | os.O_CREAT, FILE_MODE)
    _tighten(fd, path)
    return fd


def restrict_file(path: Path) -> None:
    """Tighten an existing file to mode 0600 (see :func:`open_private`); nothing if it is absent."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        _tighten(fd, path)
    finally:
        os.close(fd)


def _tighten(fd: int, path: Path) -> None:
    if os.fstat(fd).st_mode & 0o077:
        try:
            os.fchmod(fd, FILE_MODE)
        except PermissionError:
            log.warning("%s is readable by other users and this user may not change its mode: chmod 600 it", path)

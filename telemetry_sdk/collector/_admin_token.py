"""The admin token: what makes a good one, and reading it safely from its file.

The token allows ``DELETE /api/runs/<correlator>``: whoever can read its file can delete runs.
So the file must be a regular file that only its owner can read or change (mode 600, as
ssh asks of a private key), and must hold one token of at least 16 printable characters.
Every refusal names the file and says how to fix it.
"""

from __future__ import annotations

import os
import shlex
import stat
from typing import Any

from attrs import Attribute

from .._errors import ConfigurationError

__all__ = ["MAX_FILE_BYTES", "MIN_LENGTH", "check_token", "read_token_file", "validate_token"]

MIN_LENGTH = 16
#: A token file holds one token; anything larger is not a token file.
MAX_FILE_BYTES = 4096

_CREATE = "(umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > {file})"


def check_token(token: str) -> None:
    """Raise ``ConfigurationError`` unless ``token`` is >= 16 printable characters, no spaces."""
    if len(token) < MIN_LENGTH or not token.isprintable() or " " in token:
        msg = f"an admin token must be at least {MIN_LENGTH} printable characters, without spaces"
        raise ConfigurationError(msg)


def validate_token(_: object, attribute: Attribute[Any], value: str | None) -> None:
    """attrs validator: ``None`` (no deletion over HTTP) or a token that passes ``check_token``."""
    if value is not None:
        check_token(value)


def _read_owner_only(fd: int, path: str, quoted: str) -> bytes:
    """Up to MAX_FILE_BYTES + 1 bytes of a regular file that only its owner may use."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        msg = f"the admin token file {path} is not a regular file"
        raise ConfigurationError(msg)
    mode = stat.S_IMODE(info.st_mode)
    if os.name == "posix" and mode & 0o077:
        msg = (
            f"the admin token file {path} can be read or changed by group or others "
            f"(mode {mode:04o}), and whoever reads it can delete runs. "
            f"Fix it with: chmod 600 {quoted}"
        )
        raise ConfigurationError(msg)
    chunks: list[bytes] = []
    size = 0
    try:
        while size <= MAX_FILE_BYTES:
            chunk = os.read(fd, MAX_FILE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        msg = f"cannot read the admin token file {path}: {exc.strerror or exc}"
        raise ConfigurationError(msg) from None
    return b"".join(chunks)


def read_token_file(path: str) -> str:
    """The token held in ``path``; raise ``ConfigurationError`` saying what is wrong and the fix."""
    quoted = shlex.quote(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        # Opened before it is checked, and checked through the open descriptor, so the file
        # cannot be swapped in between. O_NONBLOCK: a FIFO put in its place cannot hang start.
        fd = os.open(path, flags)
    except FileNotFoundError:
        msg = f"the admin token file {path} does not exist. Create one with: " + _CREATE.format(
            file=quoted
        )
        raise ConfigurationError(msg) from None
    except PermissionError:
        msg = (
            f"cannot read the admin token file {path}: permission denied. It must belong to "
            f"the user the collector runs as, with mode 600 (chmod 600 {quoted})"
        )
        raise ConfigurationError(msg) from None
    except OSError as exc:
        msg = f"cannot read the admin token file {path}: {exc.strerror or exc}"
        raise ConfigurationError(msg) from None
    try:
        data = _read_owner_only(fd, path, quoted)
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        msg = (
            f"the admin token file {path} is larger than {MAX_FILE_BYTES} bytes; "
            "it must hold only the token"
        )
        raise ConfigurationError(msg)
    try:
        token = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        msg = f"the admin token file {path} is not UTF-8 text"
        raise ConfigurationError(msg) from None
    if not token:
        msg = (
            f"the admin token file {path} is empty. Put a random token of at least "
            f"{MIN_LENGTH} characters in it, e.g.: " + _CREATE.format(file=quoted)
        )
        raise ConfigurationError(msg)
    try:
        check_token(token)
    except ConfigurationError as exc:
        msg = f"the admin token in {path} is unusable: {exc}"
        raise ConfigurationError(msg) from None
    return token

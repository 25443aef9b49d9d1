"""The user's saved tracking settings: a small JSON file written by ``telemetry-sdk``.

Location: ``$XDG_CONFIG_HOME/telemetry-sdk/settings.json`` when ``XDG_CONFIG_HOME`` is an
absolute path, else ``~/.config/telemetry-sdk/settings.json``. Format::

    {"version": 1, "ceilings": {"*": 0, "minflow": 0}}

``ceilings`` maps a product name (lower-cased) or ``"*"`` (every product) to the highest
level that product may use, 0-3. A saved setting can only lower the level the application
chose; it can never raise it. The file is replaced atomically (a temporary file in the same
folder, fsync, ``os.replace``) and created readable by its owner only (0o600).

A file that cannot be read or understood raises ``SettingsError``; callers treat that as
"tracking disabled for every product", the safe side.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

from attrs import field, frozen

from ._config import Level
from ._errors import TelemetryError

__all__ = ["ALL", "Settings", "SettingsError", "load", "save", "settings_path"]

#: The key that stands for every product.
ALL = "*"
VERSION = 1
#: A settings file larger than this is not one we wrote.
_MAX_BYTES = 64 * 1024
_KEY = re.compile(r"[a-z][a-z0-9_-]{0,39}")


class SettingsError(TelemetryError):
    """The settings file cannot be read, understood or written; the message says why."""


def settings_path(environ: Mapping[str, str]) -> Path:
    """Where the saved settings live for this environment."""
    config = environ.get("XDG_CONFIG_HOME", "")
    base = Path(config) if os.path.isabs(config) else Path.home() / ".config"
    return base / "telemetry-sdk" / "settings.json"


def product_key(name: str) -> str:
    """The settings key of a product: its name, lower-cased."""
    return name.lower()


def _same_product(key: str, name: str) -> bool:
    # Match the way environment variable names are derived, so that ``min-flow`` and
    # ``min_flow`` (which share MIN_FLOW_USAGE_TRACKING) also share a saved setting.
    return re.sub(r"[^a-z0-9]", "_", key) == re.sub(r"[^a-z0-9]", "_", name.lower())


def _freeze(value: Mapping[str, Level]) -> Mapping[str, Level]:
    return dict(sorted(value.items()))


@frozen
class Settings:
    """The saved ceilings: product key (or ``ALL``) -> highest allowed level."""

    ceilings: Mapping[str, Level] = field(factory=dict, converter=_freeze)

    def for_product(self, name: str) -> Level | None:
        """The saved ceiling for one product (not counting ``ALL``), or ``None``."""
        found = [
            level for key, level in self.ceilings.items() if key != ALL and _same_product(key, name)
        ]
        return min(found) if found else None

    def for_all(self) -> Level | None:
        """The saved ceiling for every product, or ``None``."""
        return self.ceilings.get(ALL)

    def with_ceiling(self, key: str, level: Level) -> Settings:
        """A copy with ``key`` limited to ``level``."""
        return Settings({**self.ceilings, key: level})

    def without(self, key: str) -> Settings:
        """A copy with no saved ceiling for ``key`` (``ALL`` removes only the all-products one)."""
        return Settings(
            {k: v for k, v in self.ceilings.items() if not (k == key or _matches(k, key))}
        )

    def to_json(self) -> str:
        """The file's text."""
        body = {"version": VERSION, "ceilings": {k: int(v) for k, v in self.ceilings.items()}}
        return json.dumps(body, indent=2) + "\n"


def _matches(key: str, other: str) -> bool:
    return ALL not in (key, other) and _same_product(key, other)


def parse(text: str) -> Settings:
    """Parse the file's text; raise ``SettingsError`` saying what is wrong."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        msg = f"not valid JSON ({exc})"
        raise SettingsError(msg) from None
    if not isinstance(data, dict):
        msg = f"expected a JSON object, got {type(data).__name__}"
        raise SettingsError(msg)
    version = data.get("version")
    if version != VERSION or isinstance(version, bool):
        msg = f"unsupported version {version!r} (this telemetry-sdk reads version {VERSION})"
        raise SettingsError(msg)
    raw = data.get("ceilings", {})
    if not isinstance(raw, dict):
        msg = f"'ceilings' must be an object, got {type(raw).__name__}"
        raise SettingsError(msg)
    ceilings: dict[str, Level] = {}
    for key, value in raw.items():
        if key != ALL and _KEY.fullmatch(key) is None:
            msg = f"'ceilings' has an invalid product name {key!r}"
            raise SettingsError(msg)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 3:
            msg = f"the ceiling for {key!r} must be an integer 0-3, got {value!r}"
            raise SettingsError(msg)
        ceilings[key] = Level(value)
    return Settings(ceilings)


def load(path: Path) -> Settings | None:
    """Read the settings file: ``None`` if there is none; raise ``SettingsError`` if unreadable."""
    try:
        with path.open("rb") as file:
            raw = file.read(_MAX_BYTES + 1)
    except (FileNotFoundError, NotADirectoryError):
        return None  # no file, or a folder on the way is a file: nothing was saved
    except OSError as exc:
        msg = f"cannot be read ({exc.strerror or type(exc).__name__})"
        raise SettingsError(msg) from None
    if len(raw) > _MAX_BYTES:
        msg = f"larger than {_MAX_BYTES} bytes"
        raise SettingsError(msg)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        msg = "not UTF-8 text"
        raise SettingsError(msg) from None
    return parse(text)


def save(path: Path, settings: Settings) -> None:
    """Replace the settings file atomically, readable by its owner only.

    Raise ``SettingsError`` with a one-line reason if the folder or file cannot be written.
    """
    import tempfile  # only the command writes settings; keep it off the host's import path

    data = settings.to_json().encode("utf-8")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".settings-", suffix=".tmp")
    except OSError as exc:
        msg = f"cannot write {path.parent}: {exc.strerror or type(exc).__name__}"
        raise SettingsError(msg) from None
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        msg = f"cannot write {path}: {exc.strerror or type(exc).__name__}"
        raise SettingsError(msg) from None
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    # Make the rename itself durable where the platform allows it; best effort.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

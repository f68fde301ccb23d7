"""Per-team bearer tokens for the HTTP API.

The token file is YAML, a list of entries (or a mapping whose one key ``tokens`` holds that
list); it holds SHA-256 hashes, never plain tokens::

    - {team: vision, token_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}
    - {team: nlp, name: nlp-ci, token_sha256: ...}        # name: who it is (default: the team)
    - {team: nlp, token_env: GPUYARD_TOKEN_NLP}           # plain token from the environment
    - {admin: true, name: ops, token_sha256: ...}         # sees and acts on every team's jobs

``token_env`` names an environment variable that holds the plain token (a Kubernetes Secret
mounted with ``envFrom``); it is hashed on load and then forgotten. A team may hold several
tokens (rotation); one token maps to one principal. ``hash_token(plain)`` gives the hex
digest to write into ``token_sha256``.

Errors name the file, the entry (``entries[2].token_sha256``, or ``tokens[2]...`` under a
``tokens`` key), the bad value and what is
allowed, except that a value which may be a secret (a plain token pasted where its hash
belongs) is described by its length, not echoed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TEAM_KEYS = frozenset({"team", "name", "token_sha256", "token_env"})
_ADMIN_KEYS = frozenset({"admin", "name", "token_sha256", "token_env"})


def hash_token(plain: str) -> str:
    """The lowercase hex SHA-256 of ``plain`` (UTF-8), as stored in ``token_sha256``."""
    if not plain:
        raise ValueError("a token must not be empty")
    return hashlib.sha256(plain.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who called: a team's token (``team`` set, ``admin`` False) or an admin (``team`` None)."""

    name: str
    team: str | None
    admin: bool


@dataclass(frozen=True, slots=True)
class TokenEntry:
    principal: Principal
    token_sha256: str  # 64 lowercase hex digits


class TokenFileError(ValueError):
    def __init__(self, path: Path, where: str, value: object, allowed: str) -> None:
        super().__init__(f"{path}: {where}: {value!r} is not allowed ({allowed})")


class TokenAuth:
    """Maps a presented bearer token to its principal.

    Every stored hash is compared with ``hmac.compare_digest`` on every call, so the time
    taken does not depend on which entry (if any) matches or where the digests differ.
    """

    def __init__(self, entries: Sequence[TokenEntry]) -> None:
        seen: dict[str, str] = {}
        for e in entries:
            if e.token_sha256 in seen:
                raise ValueError(
                    f"one token is given to both {seen[e.token_sha256]!r} and "
                    f"{e.principal.name!r}; each token must map to one principal"
                )
            seen[e.token_sha256] = e.principal.name
        self._entries = [(bytes.fromhex(e.token_sha256), e.principal) for e in entries]

    @classmethod
    def from_file(cls, path: str | Path, environ: Mapping[str, str] | None = None) -> TokenAuth:
        return cls(load_token_file(path, environ))

    def authenticate(self, token: str | None) -> Principal | None:
        """The principal holding ``token``; None for a missing or unknown token."""
        if not token:
            return None
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        found: Principal | None = None
        for stored, principal in self._entries:
            if hmac.compare_digest(stored, digest):
                found = principal
        return found

    @property
    def teams(self) -> list[str]:
        return sorted({p.team for _, p in self._entries if p.team is not None})

    def __len__(self) -> int:
        return len(self._entries)


def load_token_file(path: str | Path, environ: Mapping[str, str] | None = None) -> list[TokenEntry]:
    """The entries of a token file; ``environ`` (default ``os.environ``) serves ``token_env``."""
    p = Path(path)
    env = os.environ if environ is None else environ
    try:
        doc = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise TokenFileError(p, "document", str(e).splitlines()[0], "valid YAML") from None
    prefix = "entries"
    if isinstance(doc, dict) and set(doc) == {"tokens"}:
        prefix, doc = "tokens", doc["tokens"]
    elif isinstance(doc, dict):
        extra = sorted(str(k) for k in doc if k != "tokens")
        raise TokenFileError(p, extra[0], extra[0], "the one top-level key 'tokens' (or a list)")
    if not isinstance(doc, list) or not doc:
        raise TokenFileError(
            p,
            "document" if prefix == "entries" else "tokens",
            _short(doc),
            "a non-empty list of {team: NAME, token_sha256: HEX}"
            " or {admin: true, name: NAME, token_sha256: HEX} entries",
        )
    return [_entry(p, f"{prefix}[{i}]", raw, env) for i, raw in enumerate(doc)]


def _entry(p: Path, where: str, raw: object, env: Mapping[str, str]) -> TokenEntry:
    if not isinstance(raw, dict):
        raise TokenFileError(p, where, _short(raw), "a mapping with team or admin, and a token")
    admin = "admin" in raw
    if admin == ("team" in raw):
        raise TokenFileError(
            p, where, sorted(map(str, raw)), "exactly one of 'team: NAME' or 'admin: true'"
        )
    allowed = _ADMIN_KEYS if admin else _TEAM_KEYS
    unknown = sorted(str(k) for k in raw if k not in allowed)
    if unknown:
        raise TokenFileError(
            p,
            f"{where}.{unknown[0]}",
            unknown[0],
            f"keys of {'an admin' if admin else 'a team'} entry: {', '.join(sorted(allowed))}",
        )
    if admin:
        if raw["admin"] is not True:
            raise TokenFileError(
                p,
                f"{where}.admin",
                raw["admin"],
                "true (for a team's token write 'team: NAME' instead)",
            )
        if "name" not in raw:
            raise TokenFileError(p, f"{where}.name", None, "an admin entry needs a name")
        principal = Principal(_name(p, f"{where}.name", raw["name"]), None, True)
    else:
        team = _name(p, f"{where}.team", raw["team"])
        name = _name(p, f"{where}.name", raw["name"]) if "name" in raw else team
        principal = Principal(name, team, False)
    return TokenEntry(principal, _token_hash(p, where, raw, env))


def _name(p: Path, where: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip() or value != value.strip():
        raise TokenFileError(
            p,
            where,
            value,
            "a non-empty string without surrounding spaces; quote a name YAML reads as a number",
        )
    return value


def _token_hash(p: Path, where: str, raw: dict[Any, Any], env: Mapping[str, str]) -> str:
    if ("token_sha256" in raw) == ("token_env" in raw):
        raise TokenFileError(
            p,
            where,
            sorted(map(str, raw)),
            "exactly one of token_sha256: HEX or token_env: VARIABLE",
        )
    if "token_sha256" in raw:
        value = raw["token_sha256"]
        if not isinstance(value, str) or not _HEX64.fullmatch(value):
            shown = f"<{len(value)} characters>" if isinstance(value, str) else value
            raise TokenFileError(
                p,
                f"{where}.token_sha256",
                shown,
                "64 hex digits, the SHA-256 of the token (hash_token(token)); "
                "never the plain token",
            )
        return value.lower()
    var = raw["token_env"]
    if not isinstance(var, str) or not _ENV_NAME.fullmatch(var):
        raise TokenFileError(p, f"{where}.token_env", var, "an environment variable name")
    plain = env.get(var, "")
    if not plain.strip():
        raise TokenFileError(
            p,
            f"{where}.token_env",
            var,
            "a variable that is set to a non-empty token in the service's environment",
        )
    return hash_token(plain.strip())


def _short(value: object) -> object:
    text = repr(value)
    return value if len(text) <= 60 else text[:57] + "..."

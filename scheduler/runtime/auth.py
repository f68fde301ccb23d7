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

Validated by :class:`TokenFileEntry` (scheduler/files/document.py): errors name the file, the
line, the entry (``[2].token_sha256``, or ``tokens[2]...`` under a ``tokens`` key), the bad
value and what is allowed, except that a value which may be a secret (a plain token pasted
where its hash belongs) is described by its length, never echoed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, RootModel, model_validator

from scheduler.files.document import (
    CrossField,
    Document,
    FileModel,
    InputRejected,
    read_document,
    reject,
    validate,
)

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HASH_RULE = "64 hex digits, the SHA-256 of the token (hash_token(token)); never the plain token"
_NAME_RULE = "a non-empty string without surrounding spaces; quote a name YAML reads as a number"


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


class TokenFileError(InputRejected):
    """A bad token file: one line per problem, ``file:line: field: msg (got value)``; a value
    that may be a secret is shown by its length only."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__([_masked(e) for e in errors])


def _masked(error: dict[str, Any]) -> dict[str, Any]:
    """``error`` without a value that may be a secret: a ``token_sha256`` string (a plain
    token pasted where its hash belongs) becomes ``<N characters>``, also inside an entry."""
    if "input" not in error:
        return error
    loc = tuple(error.get("loc", ()))
    value = error["input"]
    # the value of token_sha256, or of a misspelt key (``token: PLAIN``), may be a secret
    unknown = error.get("type") == "extra_forbidden"
    if (unknown and isinstance(value, str)) or (loc and loc[-1] == "token_sha256"):
        return {**error, "input": _mask_all(value)}
    return {**error, "input": _mask_within(value)}


_LENGTH = re.compile(r"<[0-9]+ characters>")


def _length_of(value: str) -> str:
    return value if _LENGTH.fullmatch(value) else f"<{len(value)} characters>"


def _mask_all(value: Any) -> Any:
    """Every string in ``value`` by its length."""
    if isinstance(value, str):
        return _length_of(value)
    if isinstance(value, dict):
        return {k: _mask_all(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_all(v) for v in value]
    return value


def _mask_within(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _length_of(v) if k == "token_sha256" and isinstance(v, str) else _mask_within(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_mask_within(v) for v in value]
    return value


def _hex64(value: str) -> str:
    if not _HEX64.fullmatch(value):
        raise ValueError(_HASH_RULE)
    return value


def _env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise ValueError("must be an environment variable name")
    return value


def _name_text(value: str) -> str:
    if not value.strip() or value != value.strip():
        raise ValueError(_NAME_RULE)
    return value


def _true(value: bool) -> bool:
    if value is not True:
        raise ValueError("must be true (for a team's token write 'team: NAME' instead)")
    return value


# true only (a Literal[True] would take 1, which equals True)
AdminTrue = Annotated[bool, AfterValidator(_true), Field(json_schema_extra={"const": True})]
NameText = Annotated[
    str,
    AfterValidator(_name_text),
    Field(json_schema_extra={"pattern": r"^\S(.*\S)?$"}),
]
Hex64 = Annotated[
    str, AfterValidator(_hex64), Field(json_schema_extra={"pattern": "^[0-9a-fA-F]{64}$"})
]
EnvName = Annotated[
    str,
    AfterValidator(_env_name),
    Field(json_schema_extra={"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}),
]


def _no_nulls(schema: dict[str, Any]) -> None:
    """The entry's schema: no field takes null, and the rules of which fields go together."""
    for prop in schema.get("properties", {}).values():
        given = [s for s in prop.pop("anyOf", []) if s.get("type") != "null"]
        if given:
            prop.update(given[0])
        prop.pop("default", None)
    schema["allOf"] = [
        {"oneOf": [{"required": ["team"]}, {"required": ["admin"]}]},
        {"oneOf": [{"required": ["token_sha256"]}, {"required": ["token_env"]}]},
        {"if": {"required": ["admin"]}, "then": {"required": ["name"]}},
    ]


class TokenFileEntry(FileModel):
    """One token: a team's (``team``) or an admin's (``admin: true`` and a ``name``), as the
    SHA-256 of the token (``token_sha256``) or the environment variable holding it
    (``token_env``)."""

    model_config = FileModel.model_config | {
        "json_schema_extra": lambda schema, _: _no_nulls(schema),
    }

    @model_validator(mode="before")
    @classmethod
    def _given_means_set(cls, data: Any) -> Any:
        """A key given is given: ``team: null`` is not "no team" (so says the schema too)."""
        if isinstance(data, dict):
            nulls = [(k,) for k, v in data.items() if v is None and k in cls.model_fields]
            if nulls:
                raise CrossField(
                    [
                        (k, "must not be null: give a value or leave the key out", None)
                        for k in nulls
                    ]
                )
        return data

    team: NameText | None = Field(default=None, description="the team whose token it is")
    admin: AdminTrue | None = Field(
        default=None, description="true: sees and acts on every team's jobs"
    )
    name: NameText | None = Field(default=None, description="who it is (default: the team)")
    token_sha256: Hex64 | None = Field(default=None, description="hash_token(token)")
    token_env: EnvName | None = Field(
        default=None, description="environment variable holding the plain token"
    )

    @model_validator(mode="after")
    def _one_of_each(self) -> TokenFileEntry:
        given = sorted(self.model_fields_set)
        if (self.admin is None) == (self.team is None):
            raise CrossField([((), "give exactly one of 'team: NAME' or 'admin: true'", given)])
        if self.admin and self.name is None:
            raise CrossField([(("name",), "an admin entry needs a name", None)])
        if (self.token_sha256 is None) == (self.token_env is None):
            msg = "give exactly one of token_sha256: HEX or token_env: VARIABLE"
            raise CrossField([((), msg, given)])
        return self

    def principal(self) -> Principal:
        if self.admin:
            assert self.name is not None
            return Principal(self.name, None, True)
        assert self.team is not None
        return Principal(self.name or self.team, self.team, False)


class TokenList(RootModel[list[TokenFileEntry]]):
    """A token file: a non-empty list of entries."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, frozen=True)
    root: list[TokenFileEntry] = Field(min_length=1)


class TokenFile(FileModel):
    """A token file whose one key ``tokens`` holds the list of entries."""

    tokens: list[TokenFileEntry] = Field(min_length=1)


class TokenDocument(RootModel[Annotated[list[TokenFileEntry], Field(min_length=1)] | TokenFile]):
    """A token file, either form (for its JSON Schema; :func:`load_token_file` reads it)."""


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
    """The entries of a token file; ``environ`` (default ``os.environ``) serves ``token_env``.
    Raises :class:`TokenFileError`."""
    env = os.environ if environ is None else environ
    try:
        doc = read_document(path)
    except InputRejected as exc:
        raise TokenFileError(exc.errors) from None
    if doc.data is None:
        msg = "the file is empty; expected a list of {team: NAME, token_sha256: HEX} entries"
        raise reject(doc, (), msg, error=TokenFileError)
    if isinstance(doc.data, dict):
        entries = validate(TokenFile, doc, error=TokenFileError).tokens
        prefix: tuple[str, ...] = ("tokens",)
    else:
        entries = validate(TokenList, doc, error=TokenFileError).root
        prefix = ()
    return [_entry(doc, (*prefix, i), e, env) for i, e in enumerate(entries)]


def _entry(
    doc: Document, at: tuple[str | int, ...], e: TokenFileEntry, env: Mapping[str, str]
) -> TokenEntry:
    if e.token_sha256 is not None:
        return TokenEntry(e.principal(), e.token_sha256.lower())
    assert e.token_env is not None
    plain = env.get(e.token_env, "")
    if not plain.strip():
        msg = "must be a variable that is set to a non-empty token in the service's environment"
        raise reject(doc, (*at, "token_env"), msg, e.token_env, error=TokenFileError)
    return TokenEntry(e.principal(), hash_token(plain.strip()))

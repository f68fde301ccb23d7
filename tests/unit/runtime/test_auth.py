"""Token files: what loads, and errors that name the file, entry, field, value and rule."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from scheduler.runtime.auth import (
    Principal,
    TokenAuth,
    TokenFileError,
    hash_token,
    load_token_file,
)

H1 = hash_token("secret-one")
H2 = hash_token("secret-two")


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "tokens.yaml"
    p.write_text(text)
    return p


def test_hash_token_is_hex_sha256() -> None:
    assert hash_token("test") == "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    with pytest.raises(ValueError, match="must not be empty"):
        hash_token("")


def test_loads_teams_admins_and_env_tokens(tmp_path: Path) -> None:
    p = write(tmp_path, f"""
- {{team: vision, token_sha256: {H1.upper()}}}
- {{team: nlp, name: nlp-ci, token_env: NLP_TOKEN}}
- {{admin: true, name: ops, token_sha256: {H2}}}
""")  # fmt: skip
    auth = TokenAuth.from_file(p, environ={"NLP_TOKEN": "from-secret\n"})
    assert len(auth) == 3 and auth.teams == ["nlp", "vision"]
    assert auth.authenticate("secret-one") == Principal("vision", "vision", False)
    assert auth.authenticate("from-secret") == Principal("nlp-ci", "nlp", False)
    assert auth.authenticate("secret-two") == Principal("ops", None, True)
    assert auth.authenticate("secret-three") is None
    assert auth.authenticate(None) is None and auth.authenticate("") is None


HASH_RULE = "64 hex digits, the SHA-256 of the token (hash_token(token)); never the plain token"
ALLOWED = "allowed fields: team, admin, name, token_sha256, token_env"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", ":1: document: List should have at least 1 item after validation, not 0 (got [])"),
        ("team: [", ":1: document: invalid YAML: expected the node content, but found "
                    "'<stream end>'"),
        ("", ": document: the file is empty; expected a list of {team: NAME, token_sha256: HEX}"
             " entries"),
        ("- vision", ":1: [0]: Input should be a mapping with fields team, admin, name, "
                     "token_sha256, token_env (got 'vision')"),
        (f"- {{token_sha256: {H1}}}", ":1: [0]: give exactly one of 'team: NAME' or 'admin: true'"
                                      " (got ['token_sha256'])"),
        (f"- {{team: a, admin: true, token_sha256: {H1}}}", ":1: [0]: give exactly one of 'team: "
         "NAME' or 'admin: true' (got ['admin', 'team', 'token_sha256'])"),
        (f"- {{team: a, token_sha256: {H1}}}\n- {{team: b, token_sha265: {H2}}}",
         ":2: [1].token_sha265: unknown field 'token_sha265' in [1] (did you mean "
         f"'token_sha256'?); {ALLOWED} (got '<64 characters>')"),
        (f"- {{team: 42, token_sha256: {H1}}}", ":1: [0].team: Input should be a valid string;"
                                                 " quote it in YAML (got 42)"),
        (f"- {{team: ' a', token_sha256: {H1}}}", ":1: [0].team: a non-empty string without "
         "surrounding spaces; quote a name YAML reads as a number (got ' a')"),
        (f"- {{admin: yes please, name: ops, token_sha256: {H1}}}",
         ":1: [0].admin: Input should be a valid boolean (got 'yes please')"),
        (f"- {{admin: false, name: ops, token_sha256: {H1}}}",
         ":1: [0].admin: must be true (for a team's token write 'team: NAME' instead) (got "
         "False)"),
        (f"- {{admin: 1, name: ops, token_sha256: {H1}}}",
         ":1: [0].admin: Input should be a valid boolean (got 1)"),
        (f"- {{admin: true, token_sha256: {H1}}}", ":1: [0].name: an admin entry needs a name"),
        ("- {team: a}", ":1: [0]: give exactly one of token_sha256: HEX or token_env: VARIABLE"
                        " (got ['team'])"),
        ("- {team: a, token_sha256: hunter2}", f":1: [0].token_sha256: {HASH_RULE} (got "
                                               "'<7 characters>')"),
        ("- {team: a, token_sha256: [hunter2]}", ":1: [0].token_sha256: Input should be a valid "
                                                 "string (got ['<7 characters>'])"),
        ("- {team: a, token: hunter2}", f":1: [0].token: unknown field 'token' in [0] (did you "
         f"mean 'token_env'?); {ALLOWED} (got '<7 characters>')"),
        ("- {team: a, token_env: 'NOT SET'}", ":1: [0].token_env: must be an environment "
                                              "variable name (got 'NOT SET')"),
        ("- {team: a, token_env: MISSING_VAR}", ":1: [0].token_env: must be a variable that is"
         " set to a non-empty token in the service's environment (got 'MISSING_VAR')"),
        (f"- {{team: a, token_sha256: {H1}}}\n- {{team: a, team: b, token_sha256: {H2}}}",
         ":2: [1].team: key 'team' is given more than once (first on line 2); give each key "
         "once (got 'team')"),
    ],
)  # fmt: skip
def test_loader_errors_name_file_line_entry_field_value_and_rule(
    tmp_path: Path, text: str, message: str
) -> None:
    p = write(tmp_path, text)
    with pytest.raises(TokenFileError) as e:
        load_token_file(p, environ={})
    assert str(e.value) == f"{p}{message}"


def test_plain_token_is_never_echoed(tmp_path: Path) -> None:
    for text in (
        "- {team: a, token_sha256: my-plain-secret}",
        "- {team: a, token_sha256: [my-plain-secret]}",
        "- {team: a, tokn_sha256: my-plain-secret}",
        "- {token_sha256: my-plain-secret}",
        "tokenz: [{team: a, token_sha256: my-plain-secret}]",
    ):
        p = write(tmp_path, text)
        with pytest.raises(TokenFileError) as e:
            load_token_file(p)
        assert "my-plain-secret" not in str(e.value)
        assert "my-plain-secret" not in repr(e.value.errors)
        again = pickle.loads(pickle.dumps(e.value))
        assert again.errors == e.value.errors and "characters>" in str(again)


def test_one_token_for_two_principals_is_refused(tmp_path: Path) -> None:
    p = write(tmp_path, f"- {{team: a, token_sha256: {H1}}}\n- {{team: b, token_sha256: {H1}}}")
    with pytest.raises(ValueError, match="one token is given to both 'a' and 'b'"):
        TokenAuth.from_file(p)


def test_a_team_may_hold_several_tokens(tmp_path: Path) -> None:
    p = write(tmp_path, f"- {{team: a, token_sha256: {H1}}}\n- {{team: a, token_sha256: {H2}}}")
    auth = TokenAuth.from_file(p)
    assert auth.authenticate("secret-one") == auth.authenticate("secret-two")


def test_a_tokens_key_may_hold_the_list(tmp_path: Path) -> None:
    p = write(tmp_path, f"# generated\ntokens:\n  - {{team: a, token_sha256: {H1}}}\n")
    assert TokenAuth.from_file(p).authenticate("secret-one") == Principal("a", "a", False)
    p = write(tmp_path, "tokens:\n  - {team: a}\n")
    with pytest.raises(TokenFileError) as e:
        load_token_file(p)
    assert str(e.value) == (
        f"{p}:2: tokens[0]: give exactly one of token_sha256: HEX or token_env: VARIABLE "
        "(got ['team'])"
    )
    p = write(tmp_path, f"tokenz:\n  - {{team: a, token_sha256: {H1}}}\n")
    with pytest.raises(TokenFileError) as e:
        load_token_file(p)
    assert str(e.value) == (
        f"{p}:1: tokens: required field is missing\n"
        f"{p}:1: tokenz: unknown field 'tokenz' (did you mean 'tokens'?); allowed fields: "
        "tokens (got [{'team': 'a', 'token_sha256': '<64 characters>'}])"
    )


def test_dev_tokens_are_kept_across_a_second_gpuyard_up(tmp_path: Path) -> None:
    from scheduler.runtime.local import dev_tokens

    path, first = dev_tokens(tmp_path, ["perception"])
    again_path, again = dev_tokens(tmp_path, ["perception", "mapping"])
    assert again_path == path and again["perception"] == first["perception"]
    assert again["admin"] == first["admin"] and again["mapping"] not in first.values()
    auth = TokenAuth.from_file(path)
    assert auth.authenticate(first["perception"]) == Principal("perception", "perception", False)
    assert auth.authenticate(again["mapping"]) == Principal("mapping", "mapping", False)

"""Token files: what loads, and errors that name the file, entry, field, value and rule."""

from __future__ import annotations

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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "document: [] is not allowed (a non-empty list of {team: NAME, token_sha256: HEX}"
               " or {admin: true, name: NAME, token_sha256: HEX} entries)"),
        ("team: [", "document: "),
        ("- vision", "entries[0]: 'vision' is not allowed (a mapping with team or admin, and a"
                     " token)"),
        (f"- {{token_sha256: {H1}}}", "entries[0]: ['token_sha256'] is not allowed (exactly one of"
                                      " 'team: NAME' or 'admin: true')"),
        (f"- {{team: a, admin: true, token_sha256: {H1}}}", "entries[0]: ['admin', 'team', "
                                                             "'token_sha256'] is not allowed"),
        (f"- {{team: a, token_sha256: {H1}}}\n- {{team: b, token_sha265: {H2}}}",
         "entries[1].token_sha265: 'token_sha265' is not allowed (keys of a team entry: name, "
         "team, token_env, token_sha256)"),
        (f"- {{team: 42, token_sha256: {H1}}}", "entries[0].team: 42 is not allowed (a non-empty"
                                                 " string without surrounding spaces; quote a"
                                                 " name YAML reads as a number)"),
        (f"- {{admin: yes please, name: ops, token_sha256: {H1}}}",
         "entries[0].admin: 'yes please' is not allowed (true (for a team's token write "
         "'team: NAME' instead))"),
        (f"- {{admin: true, token_sha256: {H1}}}",
         "entries[0].name: None is not allowed (an admin entry needs a name)"),
        ("- {team: a}", "entries[0]: ['team'] is not allowed (exactly one of token_sha256: HEX"
                        " or token_env: VARIABLE)"),
        ("- {team: a, token_sha256: hunter2}", "entries[0].token_sha256: '<7 characters>' is not"
                                               " allowed (64 hex digits, the SHA-256 of the token"
                                               " (hash_token(token)); never the plain token)"),
        ("- {team: a, token_env: 'NOT SET'}", "entries[0].token_env: 'NOT SET' is not allowed"
                                              " (an environment variable name)"),
        ("- {team: a, token_env: MISSING_VAR}", "entries[0].token_env: 'MISSING_VAR' is not"
                                                " allowed (a variable that is set to a non-empty"
                                                " token in the service's environment)"),
    ],
)  # fmt: skip
def test_loader_errors_name_file_entry_field_value_and_rule(
    tmp_path: Path, text: str, message: str
) -> None:
    p = write(tmp_path, text)
    with pytest.raises(TokenFileError) as e:
        load_token_file(p, environ={})
    assert str(e.value).startswith(f"{p}: {message}")


def test_plain_token_is_never_echoed(tmp_path: Path) -> None:
    p = write(tmp_path, "- {team: a, token_sha256: my-plain-secret}")
    with pytest.raises(TokenFileError) as e:
        load_token_file(p)
    assert "my-plain-secret" not in str(e.value)


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
    with pytest.raises(TokenFileError, match=r"tokens\[0\]: \['team'\] is not allowed"):
        load_token_file(p)
    p = write(tmp_path, f"tokenz:\n  - {{team: a, token_sha256: {H1}}}\n")
    with pytest.raises(
        TokenFileError, match=r"tokenz: 'tokenz' is not allowed \(the one top-level"
    ):
        load_token_file(p)


def test_dev_tokens_are_kept_across_a_second_gpuyard_up(tmp_path: Path) -> None:
    from scheduler.runtime.local import dev_tokens

    path, first = dev_tokens(tmp_path, ["perception"])
    again_path, again = dev_tokens(tmp_path, ["perception", "mapping"])
    assert again_path == path and again["perception"] == first["perception"]
    assert again["admin"] == first["admin"] and again["mapping"] not in first.values()
    auth = TokenAuth.from_file(path)
    assert auth.authenticate(first["perception"]) == Principal("perception", "perception", False)
    assert auth.authenticate(again["mapping"]) == Principal("mapping", "mapping", False)

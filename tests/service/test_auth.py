"""Tokens: created once, stored as hashes, checked against every entry, re-read when the file changes."""

import json

import pytest

from service import auth
from service.cli.main import main


def test_create_stores_only_a_hash_and_authenticates(tmp_path):
    path = tmp_path / "tokens.json"
    token = auth.create(path, "alice")
    admin = auth.create(path, "root", admin=True)
    stored = path.read_text()
    assert token not in stored and admin not in stored and auth.digest(token) in stored
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    tokens = auth.TokenFile(path)
    assert tokens.authenticate(token) == auth.Principal("alice", "user")
    assert tokens.authenticate(admin).admin
    assert tokens.authenticate(token + "x") is None and tokens.authenticate("") is None


def test_new_tokens_work_without_a_restart(tmp_path):
    path = tmp_path / "tokens.json"
    auth.create(path, "alice")
    tokens = auth.TokenFile(path)
    tokens.entries()
    later = auth.create(path, "bob")
    assert tokens.authenticate(later).name == "bob"


@pytest.mark.parametrize("content", [
    "[1, 2]", '{"tokens": {}}', '{"tokens": [{"sha256": "abc", "principal": "a", "role": "user"}]}',
    '{"tokens": [{"sha256": "' + "0" * 64 + '", "principal": "a b", "role": "user"}]}',
    '{"tokens": [{"sha256": "' + "0" * 64 + '", "principal": "a", "role": "root"}]}',
])
def test_a_malformed_tokens_file_is_refused(tmp_path, content):
    path = tmp_path / "tokens.json"
    path.write_text(content)
    with pytest.raises(ValueError):
        auth.TokenFile(path).entries()


def test_bad_principal_names(tmp_path):
    for name in ("", "a/b", "../x", "x" * 65):
        with pytest.raises(ValueError):
            auth.create(tmp_path / "t.json", name)


def test_token_create_command(tmp_path, capsys, monkeypatch):
    path = tmp_path / "tokens.json"
    monkeypatch.setenv("CONVTRAIN_TOKENS_FILE", str(path))
    assert main(["token", "create", "carol", "--admin"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("ct_") and auth.TokenFile(path).authenticate(token).role == "admin"
    assert json.loads(path.read_text())["tokens"][0]["principal"] == "carol"


def test_quota_overrides_must_be_whole_numbers(tmp_path):
    path = tmp_path / "tokens.json"
    auth.create(path, "alice")
    data = json.loads(path.read_text())
    data["tokens"][0]["quotas"] = {"active_jobs": "lots"}
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError):
        auth.TokenFile(path).entries()

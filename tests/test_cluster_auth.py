"""The Ray auth token object: found where Ray looks, and never shown by repr() or str() (no Ray needed)."""

from cluster.auth import find_auth_token

SECRET = "s3cr3t-token-value-0123456789"


def test_token_value_is_sent_but_never_shown(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("RAY_AUTH_TOKEN", SECRET)
    token = find_auth_token()
    assert token.headers() == {"Authorization": f"Bearer {SECRET}"}
    for text in (repr(token), str(token), f"{token}", repr([token])):
        assert SECRET not in text
        assert "$RAY_AUTH_TOKEN" in text  # the source still says where it came from


def test_token_from_a_file_is_not_shown_either(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    path = tmp_path / "token"
    path.write_text(SECRET + "\n")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(path))
    token = find_auth_token()
    assert token.value == SECRET and SECRET not in repr(token) and str(path) in repr(token)

"""The API token file (lbapp.apitoken): made once, 0600 in a 0700 folder, reused after; a file
that others could read, a link, or one that holds no token is refused in one line."""
import os
import stat

import pytest

from lbapp import apitoken
from lbapp.environment import EnvironmentProblem


def test_made_at_first_start_private_and_kept(tmp_path):
    path = tmp_path / "lbapp" / "api-8553.token"
    token = apitoken.ensure(path)
    assert len(token) >= 40 and apitoken.ensure(path) == token  # the second start keeps it
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_file_others_can_read_a_link_or_no_token_is_refused(tmp_path):
    path = tmp_path / "api.token"
    path.write_text("abc\n")
    path.chmod(0o640)
    with pytest.raises(EnvironmentProblem, match=r"mode 0640 lets others read or write it: chmod 600"):
        apitoken.read(path)
    path.chmod(0o600)
    assert apitoken.read(path) == "abc"
    link = tmp_path / "link.token"
    link.symlink_to(path)
    with pytest.raises(EnvironmentProblem, match="link.token"):
        apitoken.ensure(link)
    for text in ("", "two words\n", "x" * 5000):
        path.write_text(text)
        with pytest.raises(EnvironmentProblem, match="not a token"):
            apitoken.read(path)


def test_only_the_token_as_a_bearer_is_accepted():
    assert apitoken.accepts("abc", "Bearer abc") and apitoken.accepts("abc", "bearer  abc")
    assert not any(apitoken.accepts("abc", given) for given in (None, "", "Bearer", "Bearer abd", "Basic abc", "abc"))


def test_root_keeps_its_tokens_in_run_one_per_api_port(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert str(apitoken.default_path(8553)) == "/run/lbapp/api-8553.token"
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert str(apitoken.default_path(8600)) == "/run/user/1000/lbapp/api-8600.token"

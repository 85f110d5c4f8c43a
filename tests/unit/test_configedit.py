"""Runtime changes written back to the config file: one line changes, comments and layout stay,
and a change the rules refuse writes nothing."""
from pathlib import Path

import pytest

from lbapp.config import ConfigError
from lbapp.configedit import NotFound, change_backend, write_atomically

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "topologies" / "worked_example.yaml").read_text()


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    assert len(before.splitlines()) == len(after.splitlines())
    return [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]


@pytest.mark.parametrize("action, weight, line, admin", [
    ("drain", None, "      - {ip: 10.11.12.12, drain: true}", "drain"),
    ("down", None, "      - {ip: 10.11.12.12, down: true}", "down"),
    ("weight", 7, "      - {ip: 10.11.12.12, weight: 7}", "up"),
])
def test_one_backend_line_changes_and_the_rest_of_the_file_stays(action, weight, line, admin):
    text, cfg = change_backend(TEXT, "web", "10.11.12.12", action, weight)
    assert changed_lines(TEXT, text) == [("      - {ip: 10.11.12.12}", line)]
    assert "# the OVS bridge the pipeline runs on" in text  # comments kept
    assert cfg.vips[0].backends[1].admin_state == admin


def test_enable_undoes_drain_and_down_and_keeps_the_weight():
    text, _ = change_backend(TEXT, "117.78.6.19:80/tcp", "10.11.12.12", "weight", 4)  # by ip:port/protocol
    text, _ = change_backend(text, "web", "10.11.12.12", "drain")
    text, _ = change_backend(text, "web", "10.11.12.12", "down")
    text, cfg = change_backend(text, "web", "10.11.12.12", "enable")
    assert changed_lines(TEXT, text) == [("      - {ip: 10.11.12.12}", "      - {ip: 10.11.12.12, weight: 4}")]
    assert cfg.vips[0].backends[1].admin_state == "up"


def test_what_is_not_there_or_not_valid_is_refused_with_field_paths():
    with pytest.raises(NotFound, match="no VIP 'nope'"):
        change_backend(TEXT, "nope", "10.11.12.12", "drain")
    with pytest.raises(NotFound, match="has no backend 10.11.12.99"):
        change_backend(TEXT, "web", "10.11.12.99", "drain")
    with pytest.raises(ConfigError) as refused:
        change_backend(TEXT, "web", "10.11.12.12", "weight", 20000, source="lb.yaml")
    assert [str(e) for e in refused.value.errors] == [
        "vips[0].backends[1].weight: Input should be less than or equal to 10000 (got 20000)"]
    with pytest.raises(ConfigError, match="unknown action 'reboot'"):
        change_backend(TEXT, "web", "10.11.12.12", "reboot")
    # draining every backend leaves the VIP nothing: the same rule as lbapp check
    text = TEXT
    for ip in ("10.11.12.11", "10.11.12.12"):
        text, _ = change_backend(text, "web", ip, "drain")
    with pytest.raises(ConfigError, match="every backend is drained, down or of weight 0"):
        change_backend(text, "web", "10.11.12.13", "drain")


def test_the_file_is_replaced_in_one_rename_keeping_its_mode(tmp_path):
    path = tmp_path / "lb.yaml"
    path.write_text(TEXT)
    path.chmod(0o640)
    write_atomically(path, TEXT + "# more\n")
    assert path.read_text().endswith("# more\n") and path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["lb.yaml"]  # no temporary file left


def test_a_symlinked_config_stays_a_symlink(tmp_path):
    real = tmp_path / "real.yaml"
    real.write_text(TEXT)
    link = tmp_path / "lb.yaml"
    link.symlink_to(real)
    write_atomically(link, TEXT + "# more\n")
    assert link.is_symlink() and real.read_text().endswith("# more\n")

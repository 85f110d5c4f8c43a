"""Thousands of VIPs (#27), what a file costs before the controller: a generated config of many
VIPs is read and accepted, hostile ones are still refused fast (tests/unit/test_hostile_files.py),
and `lbapp check` summarises a large file per VIP instead of printing a row per backend."""
import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("config_scale", ROOT / "bench" / "config_scale.py")
config_scale = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(config_scale)


def test_a_config_of_a_thousand_vips_is_accepted(tmp_path):
    from lbapp.config import load_config

    path = tmp_path / "lb.yaml"
    path.write_text(config_scale.generate(1000, 10))
    cfg = load_config(path)
    assert len(cfg.vips) == 1000 and sum(len(v.backends) for v in cfg.vips) == 10_000


def test_check_summarises_a_large_file_per_vip_unless_asked_for_every_backend(tmp_path):
    path = tmp_path / "lb.yaml"
    path.write_text(config_scale.generate(30, 10))

    def check(*extra):
        return subprocess.run([sys.executable, "-m", "lbapp.cli.main", "check", str(path), *extra],
                              capture_output=True, text=True, cwd=ROOT, timeout=60)

    summary = check()
    assert summary.returncode == 0 and "30 VIPs, 300 backends (--all: a row per backend)" in summary.stdout
    assert summary.stdout.count("vip") == 30 and "10.11.1.0" not in summary.stdout
    every = check("--all")
    assert every.returncode == 0 and every.stdout.count("aa:bb:") == 300  # each backend's fabricated MAC


def test_the_state_comes_one_vip_or_one_page_at_a_time(tmp_path):
    import pytest

    from lbapp.config import load_config
    from lbapp.service import Balancer
    from lbapp.snapshot import NoSuchVip

    path = tmp_path / "lb.yaml"
    path.write_text(config_scale.generate(30, 2))
    lb = Balancer(load_config(path))
    page = lb.snapshot(0.0, offset=10, limit=5)
    assert [v["name"] for v in page["vips"]] == [f"vip{i}" for i in range(10, 15)]
    assert (page["vips_total"], page["next_offset"]) == (30, 15)
    last = lb.snapshot(0.0, offset=28, limit=5)
    assert [v["name"] for v in last["vips"]] == ["vip28", "vip29"] and last["next_offset"] is None
    assert [v["name"] for v in lb.snapshot(0.0, vip="117.78.0.3:80/tcp")["vips"]] == ["vip3"]
    with pytest.raises(NoSuchVip):
        lb.snapshot(0.0, vip="vip30")
    whole = lb.snapshot(0.0)
    assert len(whole["vips"]) == whole["vips_total"] == 30 and whole["next_offset"] is None

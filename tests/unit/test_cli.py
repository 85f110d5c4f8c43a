import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def lbapp(*args):
    return subprocess.run([sys.executable, "-m", "lbapp.cli.main", *args], capture_output=True, text=True,
                          cwd=ROOT)


def test_mac_encode_and_decode():
    assert lbapp("mac", "10.11.12.13").stdout.strip() == "aa:bb:0a:0b:0c:0d"
    assert lbapp("mac", "--decode", "aa:bb:0a:0b:0c:0d").stdout.strip() == "10.11.12.13"
    assert lbapp("mac", "--layout", "split", "10.11.12.13").stdout.strip() == "0a:0b:aa:0c:0d:bb"


def test_mac_bad_input_is_a_clear_error():
    out = lbapp("mac", "10.11.12")
    assert out.returncode == 2 and "not an IPv4 address" in out.stderr
    out = lbapp("mac", "--decode", "aa:bc:0a:0b:0c:0d")
    assert out.returncode == 2 and "does not carry tag aa:bb" in out.stderr


def test_check_valid_file_lists_fabricated_macs():
    out = lbapp("check", "topologies/worked_example.yaml")
    assert out.returncode == 0, out.stderr
    assert "aa:bb:0a:0b:0c:0d" in out.stdout


def test_check_invalid_file_lists_every_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    text = (ROOT / "topologies" / "worked_example.yaml").read_text()
    bad.write_text(text.replace("scheduler: rr", "scheduler: fancy").replace("via: router", "via: nobody"))
    out = lbapp("check", str(bad))
    assert out.returncode == 2
    assert "vips[0].scheduler: unknown scheduler 'fancy'" in out.stderr
    assert "routes[0].via: no gateway named 'nobody'" in out.stderr


def test_run_refuses_an_invalid_config_with_the_same_messages(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "topologies" / "worked_example.yaml").read_text().replace("scheduler: rr", "scheduler: x"))
    out = lbapp("run", "-c", str(bad), "--port", "1")
    assert out.returncode == 2
    assert "vips[0].scheduler: unknown scheduler 'x'" in out.stderr


def test_ct_policy_prints_the_zone_policy_commands():
    from lbapp.cli.main import main as cli_main
    import contextlib
    import io
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_main(["ct-policy", "--seconds", "120"]) == 0
    lines = out.getvalue().splitlines()
    assert "create Datapath" in lines[0] and "datapaths:netdev=@dp" in lines[0]
    assert lines[2] == ("ovs-vsctl add-zone-tp netdev zone=27 tcp_syn_sent=120 tcp_syn_recv=120 udp_first=120 "
                        "udp_single=120")
    assert cli_main(["ct-policy", "--seconds", "0"]) == 2


def test_ct_policy_skips_the_datapath_row_when_ovs_has_one():
    from lbapp import ctzone
    cmds = ctzone.commands("netdev", 600, has_datapath_row=True)
    assert [c[1:3] for c in cmds] == [["--if-exists", "del-zone-tp"], ["add-zone-tp", "netdev"]]

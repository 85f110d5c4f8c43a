"""A machine that lacks something: every lbapp command says what, in one line, and exits 1."""
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "topologies" / "worked_example.yaml")


def lbapp(*args, env=None, prelude=""):
    """``lbapp ARGS`` in a fresh interpreter; ``prelude`` runs first (to take something away)."""
    code = f"import sys\n{prelude}\nfrom lbapp.cli.main import main\nsys.exit(main({list(args)!r}))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=60)


def one_line_error(out, *fragments):
    assert out.returncode == 1, out
    assert "Traceback" not in out.stdout + out.stderr, out.stderr
    assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, out.stderr
    for fragment in fragments:
        assert fragment in out.stderr, out.stderr


def test_run_on_a_port_another_process_listens_on():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = lbapp("run", "-c", EXAMPLE, "--listen", "127.0.0.1", "--port", str(port))
    one_line_error(out, f"127.0.0.1:{port} is taken by another process", "--port")


def test_run_on_an_address_this_machine_does_not_have():
    out = lbapp("run", "-c", EXAMPLE, "--listen", "192.0.2.77", "--port", "6653")
    one_line_error(out, "192.0.2.77 is not an address of this machine")


def test_demo_without_root(monkeypatch):
    out = lbapp("demo", prelude="import os; os.geteuid = lambda: 1000")
    one_line_error(out, "needs root", "sudo")


def test_commands_without_open_vswitch_installed(tmp_path):
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path)}  # no ovs-* on it
    one_line_error(lbapp("flows", "s1", env=env), "ovs-vsctl, ovs-ofctl, ovs-appctl not found", "scripts/setup.sh")
    one_line_error(lbapp("ct-policy", "--apply", env=env), "not found", "scripts/setup.sh")


def test_without_mininet(tmp_path):
    hide = "sys.modules['mininet'] = None; sys.modules['mininet.net'] = None"
    out = lbapp("draw", "cross_vlan", "-o", str(tmp_path), prelude=hide)
    one_line_error(out, "Mininet is not importable", "scripts/setup.sh")
    out = lbapp("demo", prelude=hide + "; import os; os.geteuid = lambda: 0; "
                "import lbapp.environment as e; e.require_ovs = lambda: None")
    one_line_error(out, "Mininet is not importable")


def test_draw_without_matplotlib(tmp_path):
    pytest.importorskip("mininet.net", reason="the topologies import Mininet's node classes")
    out = lbapp("draw", "cross_vlan", "-o", str(tmp_path), prelude="sys.modules['matplotlib'] = None")
    one_line_error(out, "drawing needs matplotlib", "lbapp[draw]")


def test_an_unwritable_output_folder(tmp_path):
    pytest.importorskip("mininet.net", reason="the topologies import Mininet's node classes")
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = lbapp("draw", "cross_vlan", "-o", str(blocker / "sub"))
    one_line_error(out, str(blocker / "sub"))


def test_run_with_its_api_port_taken():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            of_port = free.getsockname()[1]
        out = lbapp("run", "-c", EXAMPLE, "--listen", "127.0.0.1", "--port", str(of_port), "--api-port", str(port))
    one_line_error(out, f"127.0.0.1:{port} is taken by another process", "--api-port")


@pytest.mark.parametrize("args, fragments", [
    (["--config-file", "nope.conf"], ["--config-file nope.conf: no such file"]),
    (["--config-file", "{bad_value}", "-c", EXAMPLE], ["--config-file:", "ofp_tcp_listen_port", "abc"]),
    (["--config-file", "{broken}"], ["--config-file: Failed to parse", "Invalid section"]),
    (["--tls-key", EXAMPLE, "-c", EXAMPLE], ["TLS needs all three"]),
    (["--tls-key", "k.pem", "--tls-cert", "c.pem", "--tls-ca", "ca.pem", "-c", EXAMPLE], ["TLS: k.pem: no such file"]),
    (["--app", "no.such.module", "-c", EXAMPLE], ["--app 'no.such.module': no such Python module"]),
    ([], ["no balancer config: give -c FILE"]),
    (["--etcd", "ftp://etcd:2379", "-c", EXAMPLE], ["--etcd (etcd): 'ftp://etcd:2379': not an etcd client URL"]),
    (["--etcd", "http://127.0.0.1:2379", "--lease", "1", "-c", EXAMPLE], ["--lease (lease): 1: give 2 to 60 seconds"]),
])
def test_run_with_a_bad_option_or_os_ken_config_file(tmp_path, args, fragments):
    (tmp_path / "bad.conf").write_text("[DEFAULT]\nofp_tcp_listen_port = abc\n")
    (tmp_path / "broken.conf").write_text("[lbapp\nconfig = x\n")
    args = [a.format(bad_value=tmp_path / "bad.conf", broken=tmp_path / "broken.conf") for a in args]
    one_line_error(lbapp("run", *args), *fragments)


def test_an_os_ken_config_file_sets_what_the_command_line_does_not(tmp_path):
    with socket.socket() as taken, socket.socket() as other:
        for s in (taken, other):
            s.bind(("127.0.0.1", 0))
            s.listen()
        conf = tmp_path / "os_ken.conf"
        conf.write_text(f"[DEFAULT]\nofp_listen_host = 127.0.0.1\nofp_tcp_listen_port = {taken.getsockname()[1]}\n"
                        f"[lbapp]\nconfig = {EXAMPLE}\n")
        # the file's config and port are used...
        one_line_error(lbapp("run", "--config-file", str(conf)), f"127.0.0.1:{taken.getsockname()[1]} is taken")
        # ...unless the command line says otherwise
        one_line_error(lbapp("run", "--config-file", str(conf), "--port", str(other.getsockname()[1])),
                       f"127.0.0.1:{other.getsockname()[1]} is taken")


def test_run_refuses_tls_files_that_would_not_load_in_one_line(tmp_path):
    """Before, garbage PEM files or a key of another certificate were accepted, "OpenFlow over
    TLS" was logged, and nothing listened (issue 25)."""
    from tests.helpers.pki import make_pki

    pki = make_pki(tmp_path)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello\n")
    encrypted = tmp_path / "encrypted.key"
    subprocess.run(["openssl", "pkey", "-in", str(pki["controller.key"]), "-aes256", "-passout", "pass:secret",
                    "-out", str(encrypted)], check=True, capture_output=True, timeout=30)
    good = {"key": pki["controller.key"], "cert": pki["controller.pem"], "ca": pki["ca"]}
    cases = [({"key": garbage}, f"TLS: --tls-key {garbage}: not a PEM private key"),
             ({"cert": garbage}, f"TLS: --tls-cert {garbage}: not a PEM certificate"),
             ({"ca": garbage}, f"TLS: --tls-ca {garbage}: not a PEM certificate"),
             ({"key": pki["stranger.key"]}, f"TLS: --tls-key {pki['stranger.key']} is not the key of --tls-cert"),
             ({"key": encrypted}, f"TLS: --tls-key {encrypted}: encrypted: give it without a passphrase")]
    for bad, said in cases:
        files = good | bad
        one_line_error(lbapp("run", "-c", EXAMPLE, "--tls-key", str(files["key"]), "--tls-cert", str(files["cert"]),
                             "--tls-ca", str(files["ca"])), said)


def test_status_against_no_url_or_another_server_is_one_line(tmp_path):
    """Before: without a scheme "unknown url type", against a server answering 404 a traceback."""
    import http.server
    import threading

    one_line_error(lbapp("status", "--api", "127.0.0.1:8553"), "--api '127.0.0.1:8553': not an HTTP URL")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        one_line_error(lbapp("status", "--api", url), f"the API at {url} answered 404", "(is it lbapp's?)")
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("args, said", [
    (["status", "--watch=-1"], "argument --watch: '-1': give a number of seconds above 0"),
    (["status", "--watch", "nan"], "argument --watch: 'nan': give a number of seconds above 0"),
    (["run", "--burst", "0", "-c", EXAMPLE], "argument --burst: '0': give a whole number from 1 on"),
    (["run", "--bundle-min", "-1", "-c", EXAMPLE], "argument --bundle-min: '-1': give a whole number from 0 on"),
])
def test_a_number_out_of_range_is_named_with_its_option(args, said):
    """Before: --watch -1 refreshed without a pause; --burst 0 was blamed on --config-file."""
    out = lbapp(*args)
    assert out.returncode == 2 and said in out.stderr.splitlines()[-1] and "Traceback" not in out.stderr


def test_draw_of_a_helper_module_is_one_line():
    """Before: ``lbapp draw common`` (the topologies' shared helpers) was a traceback."""
    one_line_error(lbapp("draw", "common", "-o", "/tmp/lbapp-draw-test"),
                   "no topology 'common'", "have: cross_vlan, large, two_balancers, worked_example")

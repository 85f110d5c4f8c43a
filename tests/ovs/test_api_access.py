"""Who may change a running balancer (issue 25, item 6): writes need the token that `lbapp run`
made readable by its own user only; `lbapp backend` run by that user finds it, anyone else is
refused in one line and the config file stays as it was; reads stay open on this host, and
from another host need the token too (here a network namespace reaching an API on 0.0.0.0)."""
from __future__ import annotations

import json
import stat
import subprocess
import urllib.error
import urllib.request

from lbapp import apitoken
from tests.helpers.net import PYTHON, ROOT, sh

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def lbapp(*args: str, user: list[str] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*user, PYTHON, "-m", "lbapp.cli.main", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)


def get(url: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_only_the_controllers_user_changes_the_balancer_and_reads_from_afar_need_the_token(lab, tmp_path):
    cfg = tmp_path / "lb.yaml"
    cfg.write_text((ROOT / "topologies" / "worked_example.yaml").read_text())
    cfg.chmod(0o644)
    lab.controller(cfg, extra=("--api-listen", "0.0.0.0"))
    token_file = lab.api_token_file
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600 and token_file.stat().st_uid == 0
    before = cfg.read_text()

    drain = ("backend", "drain", "web", "10.11.12.12", "--api", lab.api_url)
    for extra in ((), ("--token-file", str(token_file))):  # its default place, or named: not readable
        refused = lbapp(*drain, *extra, user=NOBODY)
        assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert "API token" in refused.stderr and "Traceback" not in refused.stderr
    assert cfg.read_text() == before
    seen = lbapp("status", "--json", "--api", lab.api_url, user=NOBODY)  # reads from this host: open
    assert seen.returncode == 0 and json.loads(seen.stdout)["vips"][0]["name"] == "web"

    allowed = lbapp(*drain)  # the controller's user (root), its file found from the API's port
    assert allowed.returncode == 0 and allowed.stdout.startswith("drain 10.11.12.12 of web"), allowed.stderr
    assert "{ip: 10.11.12.12, drain: true}" in cfg.read_text()

    # another host: a namespace on a veth pair, the API reached at the host's end
    ns, outside = f"{lab.prefix}far", f"{lab.prefix}fo"
    sh("ip", "netns", "add", ns)
    lab.namespaces.append(ns)
    sh("ip", "link", "add", outside, "type", "veth", "peer", "name", f"{ns}i")
    lab.links.append(outside)
    sh("ip", "link", "set", f"{ns}i", "netns", ns)
    sh("ip", "addr", "add", "198.51.100.1/30", "dev", outside)
    sh("ip", "link", "set", outside, "up")
    lab.ns(ns, "ip", "addr", "add", "198.51.100.2/30", "dev", f"{ns}i")
    lab.ns(ns, "ip", "link", "set", f"{ns}i", "up")
    far = f"http://198.51.100.1:{lab.api_url.rsplit(':', 1)[1]}"
    fetch = [PYTHON, "-c", "import sys, urllib.request, urllib.error\n"
             "r = urllib.request.Request(sys.argv[1], headers={'Authorization': 'Bearer ' + sys.argv[2]} if sys.argv[2] "
             "else {})\ntry: print(urllib.request.urlopen(r, timeout=10).status)\n"
             "except urllib.error.HTTPError as e: print(e.code)"]
    token = apitoken.read(token_file)
    assert lab.ns(ns, *fetch, f"{far}/v1/state", "").strip() == "401"
    assert lab.ns(ns, *fetch, f"{far}/metrics", "wrong").strip() == "403"
    assert lab.ns(ns, *fetch, f"{far}/v1/state", token).strip() == "200"
    assert get(f"{lab.api_url}/metrics") == 200  # this host: no token
    assert "refused: this needs the API token" in lab.controller_log.read_text()

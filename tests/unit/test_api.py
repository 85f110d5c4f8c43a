"""The controller's HTTP API on a real socket, with a stand-in controller behind it: routes,
JSON answers, and bad requests answered with 4xx and one clear message."""
import json
import re
from pathlib import Path
import urllib.error
import urllib.request

import pytest

from lbapp import api
from lbapp.config import ConfigError, FieldError
from lbapp.configedit import NotFound
from lbapp.snapshot import NotListed

ROOT = Path(__file__).resolve().parents[2]


class Controller:
    def __init__(self):
        self.changes = []

    def api_state(self, **page):
        from lbapp.snapshot import NoSuchVip

        if page.get("vip") == "nope":
            raise NoSuchVip("no VIP 'nope'")
        self.pages = getattr(self, "pages", []) + [page]
        return {"generation": 3, "vips": []}

    def api_readings(self, offset, limit):
        return {"vips": [], "next_offset": None}

    def api_sessions(self, vip):
        if vip == "pinned":
            raise NotListed("VIP pinned pins its connections in conntrack")
        return [{"id": 1, "client": "200.1.1.19:40000", "backend": "10.11.12.11"}] if vip == "web" else None

    def api_change_backend(self, vip, backend, action, weight):
        if backend == "10.11.12.99":
            raise NotFound(f"VIP {vip!r} has no backend {backend}")
        if weight == 20000:
            raise ConfigError([FieldError("vips[0].backends[1].weight", "less than or equal to 10000")], "lb.yaml")
        if action == "boom":
            raise RuntimeError("a bug")
        self.changes.append((vip, backend, action, weight))
        return {"done": f"{action} {backend} of {vip}", "config": "lb.yaml"}

    def api_reload(self):
        return {"done": "reloaded", "config": "lb.yaml"}

    def api_predict(self, vip, client):
        from lbapp.predict import parse_client

        parse_client(client)
        return {"backend": "10.11.12.11", "client": client} if vip == "web" else None


TOKEN = "a-token-for-tests"


@pytest.fixture
def served():
    controller = Controller()
    server = api.serve(controller, "127.0.0.1", 0, TOKEN, "/run/lbapp/api-8553.token")
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", controller
    finally:
        server.shutdown()
        server.server_close()


def request(url, body=None, raw=None, headers=None, token=TOKEN):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = ({"Authorization": f"Bearer {token}"} if token else {}) | (headers or {})
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_state_sessions_and_changes(served):
    base, controller = served
    assert request(f"{base}/v1/state") == (200, {"generation": 3, "vips": []})
    assert request(f"{base}/v1/vips/web/sessions")[1][0]["backend"] == "10.11.12.11"
    status, answer = request(f"{base}/v1/vips/117.78.6.19%3A80%2Ftcp/backends/10.11.12.12", {"action": "weight",
                                                                                           "weight": 3})
    assert status == 200 and controller.changes == [("117.78.6.19:80/tcp", "10.11.12.12", "weight", 3)]
    assert request(f"{base}/v1/reload", {}) == (200, {"done": "reloaded", "config": "lb.yaml"})


def test_bad_requests_get_4xx_with_one_clear_message(served):
    base, controller = served
    assert request(f"{base}/v1/nothing")[0] == 404
    assert request(f"{base}/v1/vips/nope/sessions") == (404, {"error": "no VIP 'nope'", "errors": []})
    assert request(f"{base}/v1/vips/pinned/sessions") == (409, {"error": "VIP pinned pins its connections in conntrack",
                                                              "errors": []})
    backend = f"{base}/v1/vips/web/backends/10.11.12.12"
    assert request(f"{base}/v1/vips/web/backends/10.11.12.99", {"action": "drain"})[0] == 404
    assert request(backend, raw=b"{not json")[1]["error"] == "the body is not JSON"
    assert request(backend, [1, 2])[1]["error"] == "the body must be a JSON object"
    assert request(backend, {"weight": 3})[1]["error"].startswith("the body needs an action")
    assert request(backend, {"action": "weight", "weight": "x" * 1000}) == (
        400, {"error": "weight: an integer, not '" + "x" * 40 + "'", "errors": []})  # values cut short
    assert request(backend, {"action": "weight", "weight": 20000}) == (
        400, {"error": "lb.yaml: refused", "errors": ["vips[0].backends[1].weight: less than or equal to 10000"]})
    status, answer = request(backend, raw=b"{}", headers={"Content-Length": "99999999"})
    assert status == 413
    assert controller.changes == []


def test_the_state_takes_one_vip_or_a_page_and_names_a_bad_query(served):
    base, controller = served
    assert request(f"{base}/v1/state?vip=web")[0] == 200
    assert request(f"{base}/v1/state?offset=20&limit=10")[0] == 200
    assert controller.pages[-2:] == [{"vip": "web"}, {"offset": 20, "limit": 10}]
    # the whole state is read a page at a time too: each read holds the controller's lock
    assert request(f"{base}/v1/state")[0] == 200 and controller.pages[-1] == {"offset": 0, "limit": 500}
    assert request(f"{base}/v1/state?vip=nope") == (404, {"error": "no VIP 'nope'", "errors": []})
    for query, message in (("limit=0", "limit: '0': a whole number from 1 to 10000"),
                           ("limit=20000", "limit: '20000': a whole number from 1 to 10000"),
                           ("offset=-1", "offset: '-1': a whole number from 0 on"),
                           ("page=2", "/v1/state takes vip, offset and limit, not page")):
        assert request(f"{base}/v1/state?{query}") == (400, {"error": message, "errors": []})


def test_a_write_without_the_token_is_refused_and_changes_nothing(served):
    base, controller = served
    backend = f"{base}/v1/vips/web/backends/10.11.12.12"
    assert request(backend, {"action": "drain"}, token=None) == (401, {
        "error": "this needs the API token (the token is in /run/lbapp/api-8553.token: lbapp backend reads it)",
        "errors": []})
    assert request(f"{base}/v1/reload", {}, token="guessed")[0] == 403
    assert request(backend, {"action": "drain"}, headers={"Authorization": "Basic " + TOKEN})[0] == 403
    assert controller.changes == []
    assert request(f"{base}/v1/state", token=None)[0] == 200  # reads from this host stay open
    assert request(backend, {"action": "drain"})[0] == 200 and len(controller.changes) == 1


def test_the_cli_sends_the_token_from_its_file_and_says_in_one_line_when_it_cannot(served, tmp_path):
    from lbapp.cli.apiclient import call
    from lbapp.environment import EnvironmentProblem

    base, controller = served
    token_file = tmp_path / "api.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    assert call(base, "/v1/reload", {}, token_file=str(token_file))["done"] == "reloaded"
    with pytest.raises(EnvironmentProblem, match=r"api.token.missing: no such file .*--token-file"):
        call(base, "/v1/reload", {}, token_file=str(tmp_path / "api.token.missing"))
    token_file.chmod(0o644)
    with pytest.raises(EnvironmentProblem, match=r"mode 0644 lets others read or write it: chmod 600"):
        call(base, "/v1/reload", {}, token_file=str(token_file))
    assert call(base, "/v1/state", token_file=None)["generation"] == 3  # a read needs none


def test_a_pick_prediction_takes_the_client_from_the_query(served):
    base, _ = served
    assert request(f"{base}/v1/vips/web/pick?client=200.1.1.19:40000") == (
        200, {"backend": "10.11.12.11", "client": "200.1.1.19:40000"})
    assert request(f"{base}/v1/vips/web/pick?client=200.1.1.19") == (
        400, {"error": "client: IPv4:port expected, not '200.1.1.19'", "errors": []})
    assert request(f"{base}/v1/vips/nope/pick?client=200.1.1.19:1")[0] == 404


def test_a_failing_call_is_a_500_and_the_api_goes_on(served):
    base, _ = served
    assert request(f"{base}/v1/vips/web/backends/10.11.12.12", {"action": "boom"})[0] == 500
    assert request(f"{base}/v1/state")[0] == 200


def test_metrics_in_the_prometheus_text_format():
    from prometheus_client.parser import text_string_to_metric_families

    from lbapp.state.latency import LatencyHistogram

    latency = LatencyHistogram()
    for seconds in (40e-6, 80e-6, 90e-6, 3e-3, 2.0):
        latency.observe(seconds)

    from ipaddress import IPv4Address

    from lbapp.snapshot import BackendReading

    class WithState(Controller):
        def api_readings(self, offset, limit):
            web = [BackendReading(IPv4Address("10.11.12.11"), "up", "up", 1, 1, 2, 7, 0, 0),
                   BackendReading(IPv4Address("10.11.12.12"), "up", "down", 0, 0, 0, 3, 0, 0),
                   BackendReading(IPv4Address("10.11.12.13"), "down", "up", 0, 0, 1, 3, 0, 0)]
            return {"vips": [("web", web)][offset:offset + limit], "next_offset": None}

        def api_state(self, **page):
            return {"vips": [],
                    "reloads": {"applied": 2, "refused": 1}, "version": "9.9.9",
                    "balancers": [{"dpid": "0000000000000001", "connected": True,
                                   "next_hops": [{"gateway": "r0", "age": 1.5}]}],
                    "packet_ins": 12, "counters": {"refused_no_backend": 2}, "setup_latency": latency.as_data()}

    server = api.serve(WithState(), "127.0.0.1", 0, TOKEN)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/metrics", timeout=5) as r:
            assert r.headers["Content-Type"].startswith("text/plain")
            text = r.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    web = lambda ip: (("backend", ip), ("vip", "web"))  # noqa: E731
    assert samples[("lbapp_backend_connections_total", web("10.11.12.11"))] == 7
    assert samples[("lbapp_backend_sessions", web("10.11.12.11"))] == 2
    assert samples[("lbapp_backend_up", web("10.11.12.12"))] == 0  # found down
    assert samples[("lbapp_backend_up", web("10.11.12.13"))] == 0  # set down (before: 1)
    assert samples[("lbapp_backend_admin_state", tuple(sorted(web("10.11.12.13") + (("state", "down"),))))] == 1
    assert samples[("lbapp_backend_admin_state", tuple(sorted(web("10.11.12.13") + (("state", "up"),))))] == 0
    assert samples[("lbapp_build_info", (("version", "9.9.9"),))] == 1
    assert samples[("lbapp_config_reloads_total", (("result", "refused"),))] == 1
    assert samples[("lbapp_next_hop_age_seconds", (("gateway", "r0"), ("switch", "0000000000000001")))] == 1.5
    assert samples[("lbapp_packet_ins_total", ())] == 12
    assert samples[("lbapp_not_served_total", (("reason", "refused_no_backend"),))] == 2
    buckets = {dict(labels)["le"]: value for (name, labels), value in samples.items()
               if name == "lbapp_setup_latency_seconds_bucket"}
    assert (buckets["5e-05"], buckets["0.0001"], buckets["0.005"], buckets["1.0"], buckets["+Inf"]) == (1, 3, 4, 4, 5)
    assert samples[("lbapp_setup_latency_seconds_count", ())] == 5
    assert abs(samples[("lbapp_setup_latency_seconds_sum", ())] - 2.00321) < 1e-9


def test_a_negative_or_stalled_body_is_refused(served):
    import socket

    base, controller = served
    port = int(base.rsplit(":", 1)[1])

    def exchange(request: bytes) -> str:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(request)
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                answer += chunk
        return answer.decode()

    answer = exchange(b"POST /v1/reload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: -1\r\n\r\n" + b"x" * 100_000)
    assert answer.startswith("HTTP/1.0 400") and "Content-Length -1: not a length" in answer
    answer = exchange(b"POST /v1/reload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: 100\r\n\r\n{")  # then nothing
    assert answer.startswith("HTTP/1.0 400") and "stalled" in answer


def test_a_scrape_reads_the_state_a_page_of_vips_at_a_time():
    """Each read of the state holds the controller's lock: a scrape of many VIPs takes it a page
    at a time (before #27: one snapshot of every VIP under one hold) and still shows every VIP."""
    from lbapp import metrics
    from lbapp.snapshot import backend_readings
    lb = _balancer(1200)
    pages = []

    def readings(**page):
        pages.append(page)
        return backend_readings(lb, **page)

    text = b"".join(metrics.Scraper(readings, lambda **page: lb.snapshot(0.0, **page), page=500).scrape()).decode()
    assert pages == [{"offset": 0, "limit": 500}, {"offset": 500, "limit": 500}, {"offset": 1000, "limit": 500}]
    assert set(re.findall(r'^lbapp_backend_up\{.*vip="(vip\d+)"', text, re.M)) == {f"vip{i}" for i in range(1200)}


def _balancer(vips: int):
    import sys

    import yaml

    from lbapp.config import parse_config
    from lbapp.service import Balancer
    sys.path.insert(0, str(ROOT / "bench"))
    from config_scale import generate
    return Balancer(parse_config(yaml.safe_load(generate(vips, 3))))


def _library_text(lb) -> str:
    """The per-backend families as the client library writes them for ``lb``'s readings."""
    from prometheus_client import CollectorRegistry, generate_latest

    from lbapp import metrics
    from lbapp.snapshot import backend_readings
    families = [family.library_family() for family in metrics.BACKEND_FAMILIES]
    for name, readings in backend_readings(lb)["vips"]:
        for r in readings:
            for family, mine in zip(families, metrics.BACKEND_FAMILIES):
                for extra, value in mine.samples(r):
                    family.add_metric([name, str(r.ip)] + ([extra] if extra is not None else []), value)

    class Families:
        def collect(self):
            yield from families
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Families())
    return generate_latest(registry).decode()


def test_the_backend_families_are_written_as_the_client_library_writes_them_and_follow_changes():
    """/metrics writes the per-backend lines itself and keeps each VIP's until its readings change
    (the library took 7 s for 10,000 VIPs): the text equals the library's for the same readings,
    at the first scrape and after sessions, traffic, a drain and a failed check change some."""
    from lbapp import metrics
    from lbapp.snapshot import backend_readings
    lb = _balancer(20)
    scraper = metrics.Scraper(lambda **page: backend_readings(lb, **page), lambda **page: lb.snapshot(0.0, **page),
                              page=7)

    def backend_part(text: str) -> str:
        return text[:text.index("# HELP lbapp_switch_connected")]

    assert backend_part(b"".join(scraper.scrape()).decode()) == _library_text(lb)
    vip = next(iter(lb.running.vips))
    first, second, third = lb.running.backends.of_vip(vip.id)
    lb.sessions.total[(vip.id, first.ip)] += 5
    lb.readings.traffic.session_ended("s1", (vip.id, second.ip), 12_345_678, 9)
    second.admin = "drain"
    third.health = "down"
    text = backend_part(b"".join(scraper.scrape()).decode())
    assert text == _library_text(lb)
    assert f'lbapp_backend_connections_total{{backend="{first.ip}",vip="{vip.model.name}"}} 5.0' in text
    assert f'lbapp_backend_bytes_total{{backend="{second.ip}",vip="{vip.model.name}"}} 1.2345678e+07' in text
    assert f'lbapp_backend_admin_state{{backend="{second.ip}",state="drain",vip="{vip.model.name}"}} 1.0' in text
    assert f'lbapp_backend_up{{backend="{third.ip}",vip="{vip.model.name}"}} 0.0' in text
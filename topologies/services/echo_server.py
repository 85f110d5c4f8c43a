"""A backend's service: HTTP and UDP servers that answer with the backend's name and the client
address they saw, so a test can tell which backend served and whether the source IP survived.

    python3 echo_server.py NAME --http 80 8080 --udp 5353 --stream 7000
Answer: ``backend=NAME client=IP:PORT server=IP:PORT``.
"""
import argparse
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def answer(name, client, server):
    return f"backend={name} client={client[0]}:{client[1]} server={server[0]}:{server[1]}\n".encode()


def http_handler(name):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self):
            body = answer(name, self.client_address, self.connection.getsockname())
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass
    return Handler


class StreamEcho(socketserver.StreamRequestHandler):
    """A long-lived TCP connection: every line gets the answer, until the client closes."""

    def handle(self):
        for _ in self.rfile:
            self.wfile.write(answer(self.server.name, self.client_address, self.connection.getsockname()))
            self.wfile.flush()


class UdpEcho(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        sock.sendto(answer(self.server.name, self.client_address, sock.getsockname()), self.client_address)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("--http", type=int, nargs="*", default=[80])
    parser.add_argument("--udp", type=int, nargs="*", default=[])
    parser.add_argument("--stream", type=int, nargs="*", default=[])
    args = parser.parse_args()
    servers = []
    for port in args.http:
        servers.append(ThreadingHTTPServer(("0.0.0.0", port), http_handler(args.name)))
    for port in args.udp:
        udp = socketserver.ThreadingUDPServer(("0.0.0.0", port), UdpEcho)
        udp.name = args.name
        servers.append(udp)
    for port in args.stream:
        stream = socketserver.ThreadingTCPServer(("0.0.0.0", port), StreamEcho)
        stream.daemon_threads = True
        stream.name = args.name
        servers.append(stream)
    for s in servers[1:]:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print("ready", flush=True)
    servers[0].serve_forever()


if __name__ == "__main__":
    main()

"""What lbapp needs from the machine it runs on, checked before it is used.

Each check raises :class:`EnvironmentProblem` with one line saying what is wrong and what to do;
the ``lbapp`` command prints that line and exits 1, never a traceback.
"""
from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess

SETUP = "scripts/setup.sh installs it"
START_OVS = "start it with scripts/ovs.sh (or /usr/share/openvswitch/scripts/ovs-ctl start)"
OVS_TIMEOUT_S = 10


class EnvironmentProblem(RuntimeError):
    """The machine lacks something lbapp needs; the message says what, and what to do."""


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise EnvironmentProblem(f"{what} needs root (Open vSwitch, network namespaces): run it with sudo")


def require_tools(*names: str) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        raise EnvironmentProblem(f"{', '.join(missing)} not found on PATH: {SETUP}")


def require_mininet() -> None:
    try:
        import mininet.net  # noqa: F401
    except ImportError:
        raise EnvironmentProblem("Mininet is not importable by this Python: " + SETUP +
                                 " (Debian's mininet, seen through a venv made with --system-site-packages)") from None


def require_ovs() -> None:
    """Open vSwitch is installed and ovs-vswitchd answers."""
    require_tools("ovs-vsctl", "ovs-ofctl", "ovs-appctl")
    if subprocess.run(["ovs-vsctl", "--timeout=3", "show"], capture_output=True).returncode != 0:
        raise EnvironmentProblem(f"Open vSwitch is not running: {START_OVS}")
    if subprocess.run(["ovs-appctl", "--timeout=3", "version"], capture_output=True).returncode != 0:
        raise EnvironmentProblem(f"ovs-vswitchd does not answer: {START_OVS}")


def ovs(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run an OVS command-line tool (``ovs-vsctl``, ``ovs-ofctl``, ``ovs-appctl``); a failure is an
    EnvironmentProblem carrying the tool's own first line of complaint."""
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=OVS_TIMEOUT_S)
    except FileNotFoundError:
        raise EnvironmentProblem(f"{args[0]} not found: Open vSwitch is not installed ({SETUP})") from None
    except subprocess.TimeoutExpired:
        raise EnvironmentProblem(f"{' '.join(args)}: no answer in {OVS_TIMEOUT_S} s: is Open vSwitch running? "
                                 f"({START_OVS})") from None
    if check and out.returncode != 0:
        lines = (out.stderr or out.stdout).strip().splitlines()
        raise EnvironmentProblem(f"{' '.join(args)}: {lines[0] if lines else f'exit {out.returncode}'}")
    return out


def datapaths() -> list[str]:
    """The datapaths ovs-vswitchd has now, as ``type@name`` (``netdev@ovs-netdev``).

    The userspace datapath exists only while some netdev bridge does: OVS creates it with the
    first one and destroys it (with its conntrack table) with the last.
    """
    out = ovs("ovs-appctl", "dpctl/dump-dps", check=False)
    if out.returncode != 0 and "no datapaths exist" not in out.stderr:
        raise EnvironmentProblem(f"ovs-appctl dpctl/dump-dps: {out.stderr.strip() or out.returncode}: {START_OVS}")
    return out.stdout.split()


def require_listen_port(host: str, port: int, options: tuple[str, str] = ("--listen", "--port")) -> None:
    """Nobody else listens on ``host:port`` and this process may bind it (checked before os-ken
    starts, which would report a failed bind only as a traceback in a thread)."""
    if not 0 < port < 65536:
        raise EnvironmentProblem(f"port {port}: not a TCP port (1-65535)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise EnvironmentProblem(f"listen address {host!r}: {exc.strerror}") from None
    family, _, _, _, sockaddr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as os-ken's server does
        try:
            sock.bind(sockaddr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise EnvironmentProblem(f"{host}:{port} is taken by another process: stop it or choose "
                                         f"another {options[1]}") from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise EnvironmentProblem(f"{host} is not an address of this machine: choose another {options[0]}"
                                         ) from None
            if exc.errno == errno.EACCES:
                raise EnvironmentProblem(f"{host}:{port}: binding a port below 1024 needs root: run with sudo "
                                         f"or choose another {options[1]}") from None
            raise EnvironmentProblem(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def listens(host: str, port: int) -> bool:
    """Whether a socket listens on ``host:port`` (a bind there fails: as the check above, so
    nothing connects to the listener, which a TLS server would count as a failed handshake)."""
    family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(sockaddr)
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def require_tls(key: str, cert: str, ca: str) -> None:
    """The three TLS files load as a server would load them: the CA and the certificate are PEM
    certificates, the key is a PEM private key and it is the certificate's."""
    import ssl

    for option, path in (("--tls-ca", ca), ("--tls-cert", cert)):
        try:
            ssl.create_default_context().load_verify_locations(cafile=path)
        except (ssl.SSLError, ValueError):
            raise EnvironmentProblem(f"TLS: {option} {path}: not a PEM certificate") from None
        except OSError as exc:
            raise EnvironmentProblem(f"TLS: {option} {path}: {exc.strerror}") from None
    asked = []  # an encrypted key asks for its passphrase, which os-ken has no way to give
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key, password=lambda: asked.append(1) or b"")
    except ssl.SSLError as exc:
        if "MISMATCH" in str(exc).upper():
            raise EnvironmentProblem(f"TLS: --tls-key {key} is not the key of --tls-cert {cert}") from None
        raise EnvironmentProblem(f"TLS: --tls-key {key}: " + ("encrypted: give it without a passphrase" if asked
                                                               else "not a PEM private key")) from None
    except OSError as exc:
        raise EnvironmentProblem(f"TLS: --tls-key {key}: {exc.strerror}") from None

"""Test certificates made with the openssl command: a CA, certificates it signed (the
controller's, a switch's) and a stranger's self-signed one, all PEM, in a folder."""
import subprocess
from pathlib import Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _key_and_request(name: str, cwd: Path) -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN=lbapp-test-{name}", cwd=cwd)


def make_pki(folder: Path) -> dict[str, Path]:
    """``ca`` (certificate), and ``NAME.key``/``NAME.pem`` for controller, switch (signed by the
    CA) and stranger (self-signed)."""
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=lbapp-test-ca", cwd=folder)
    for name in ("controller", "switch"):
        _key_and_request(name, folder)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", "2", cwd=folder)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "stranger.key", "-out", "stranger.pem",
             "-days", "2", "-subj", "/CN=lbapp-test-stranger", cwd=folder)
    files = {"ca": folder / "ca.pem"}
    for name in ("controller", "switch", "stranger"):
        files[f"{name}.key"], files[f"{name}.pem"] = folder / f"{name}.key", folder / f"{name}.pem"
    return files

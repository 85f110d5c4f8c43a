"""The API's write credential: a random token in a file only its owner may read (mode 0600),
made by the controller at its first start and reused after, as ssh treats its keys. A request
that changes the balancer carries it as ``Authorization: Bearer TOKEN``; ``lbapp backend`` reads
the same file. Who may read the file may change the balancer: root's file lives in /run/lbapp.

Each check raises :class:`EnvironmentProblem` with one line naming the file and what is wrong.
"""
from __future__ import annotations

import hmac
import os
import secrets
import stat
from pathlib import Path

from lbapp.environment import EnvironmentProblem

TOKEN_BYTES = 32
_MAX_FILE = 1024  # a token file is one short line; anything bigger is not ours


def default_dir() -> Path:
    """Root's tokens in /run/lbapp (gone at reboot, made again at start); a user's in their
    runtime directory, else under their home."""
    if os.geteuid() == 0:
        return Path("/run/lbapp")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime, "lbapp") if runtime else Path.home() / ".local" / "state" / "lbapp"


def default_path(api_port: int) -> Path:
    """One token per API port, so that several controllers on one host keep apart."""
    return default_dir() / f"api-{api_port}.token"


def ensure(path: str | Path) -> str:
    """The token in ``path``, made (0600, in a 0700 directory) when there is none yet."""
    path = Path(path)
    if not path.exists():
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            made = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            return read(path)  # another controller made it just now
        except OSError as exc:
            raise EnvironmentProblem(f"API token {path}: cannot make it ({exc.strerror})") from None
        with os.fdopen(made, "w") as out:
            out.write(secrets.token_urlsafe(TOKEN_BYTES) + "\n")
    return read(path)


def read(path: str | Path) -> str:
    """The token in ``path``, refused when others could read or write it (as ssh refuses a key)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise EnvironmentProblem(f"API token {path}: no such file (the controller makes it at start; "
                                 "give --token-file)") from None
    except OSError as exc:
        raise EnvironmentProblem(f"API token {path}: {exc.strerror} (it is readable by the controller's "
                                 "user only: run as that user, or with sudo)") from None
    with os.fdopen(fd, "rb") as src:
        info = os.fstat(src.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise EnvironmentProblem(f"API token {path}: not a regular file")
        if info.st_mode & 0o077:
            raise EnvironmentProblem(f"API token {path}: mode {stat.S_IMODE(info.st_mode):04o} lets others read or "
                                     f"write it: chmod 600 {path}")
        if info.st_uid != os.geteuid() and os.geteuid() != 0:
            raise EnvironmentProblem(f"API token {path}: owned by uid {info.st_uid}, not by this user")
        data = src.read(_MAX_FILE + 1)
    token = data.decode("ascii", "replace").strip()
    if len(data) > _MAX_FILE or not token or any(c.isspace() or not c.isprintable() for c in token):
        raise EnvironmentProblem(f"API token {path}: not a token (one line of printable characters)")
    return token


def accepts(token: str, authorization: str | None) -> bool:
    """Whether an ``Authorization`` header carries ``token`` (compared in constant time)."""
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())

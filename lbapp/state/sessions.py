"""Live connections: which backend each is pinned to, and per-backend counts."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from lbapp.schedulers.base import LiveCounts
from lbapp.shared import MAX_SESSION_ID, ConnKey, IPv4


@dataclass
class Session:
    """One live connection: its key, backend and switch, and the VIP id in its flow's cookie.
    Changed only by its ``Sessions`` (``vip_id`` goes to 0 when its VIP leaves the config)."""

    session_id: int
    key: ConnKey
    vip_id: int  # the VIP's id; 0 once its VIP left the config
    backend: IPv4
    created: float
    flow_vip: int = 0  # the VIP id in its flow's cookie, as installed (an earlier run's, if adopted)
    dpid: int = 0  # the balancer switch whose session table holds its flow

    def __post_init__(self) -> None:
        self.flow_vip = self.flow_vip or self.vip_id


class Sessions:
    """Owns the live sessions (by key and by id), the live counts per VIP and backend the schedulers
    read, and the sessions ever made. Changed by the Balancer and the rooms it hands it to:
    lbapp.handlers.connections adds (``add``, ``counted``), lbapp.handlers.adoption takes back
    (``adopt``); the Balancer removes, writes ``pin: conntrack`` live counts and forgets VIPs after
    a reload."""

    def __init__(self, first_id: int = 1) -> None:
        self.by_key: dict[ConnKey, Session] = {}
        self.by_id: dict[int, Session] = {}
        self.active: dict[int, LiveCounts] = {}  # vip id -> backend -> live sessions
        self.total: Counter[tuple[int, IPv4]] = Counter()  # (vip id, backend) -> sessions ever made
        # a controller restart starts elsewhere in the id space: flows of the previous run
        # still in the switch then do not collide with this run's sessions
        self._next_id = min(max(first_id, 1), MAX_SESSION_ID)

    def __len__(self) -> int:
        return len(self.by_key)

    def get(self, key: ConnKey) -> Session | None:
        return self.by_key.get(key)

    def counts(self, vip_id: int) -> LiveCounts:
        counts = self.active.get(vip_id)
        if counts is None:
            counts = self.active[vip_id] = LiveCounts()
        return counts

    def add(self, key: ConnKey, vip_id: int, backend: IPv4, now: float, dpid: int = 0) -> Session:
        session = Session(self._allocate_id(), key, vip_id, backend, now, dpid=dpid)
        self.by_key[key] = session
        self.by_id[session.session_id] = session
        self.counts(vip_id)[backend] += 1
        self.total[(vip_id, backend)] += 1
        return session

    def counted(self, vip_id: int, backend: IPv4) -> None:
        """A connection picked for a ``pin: conntrack`` VIP: counted, with no session of its own."""
        self.counts(vip_id)[backend] += 1
        self.total[(vip_id, backend)] += 1

    def set_live(self, vip_id: int, live: Counter) -> None:
        """A ``pin: conntrack`` VIP's live counts, as the switch's counters tell them
        (lbapp.state.pinned): only backends whose count moved are written."""
        counts = self.counts(vip_id)
        for backend in set(counts) | set(live):
            if live[backend] <= 0:
                if backend in counts:
                    del counts[backend]
            elif counts[backend] != live[backend]:
                counts[backend] = live[backend]

    def adopt(self, key: ConnKey, vip_id: int, backend: IPv4, session_id: int, flow_vip: int, created: float,
              dpid: int = 0) -> Session | None:
        """A session an earlier controller run left in the switch, under its own id; None when
        the connection or the id is known already."""
        if key in self.by_key or session_id in self.by_id or not 0 < session_id <= MAX_SESSION_ID:
            return None
        session = Session(session_id, key, vip_id, backend, created, flow_vip, dpid)
        self.by_key[key] = session
        self.by_id[session_id] = session
        self.counts(vip_id)[backend] += 1
        return session

    def flow_under(self, session: Session, vip_id: int) -> None:
        """``session``'s flow is (re)installed with VIP id ``vip_id`` in its cookie."""
        session.flow_vip = vip_id

    def remove(self, session_id: int) -> Session | None:
        session = self.by_id.pop(session_id, None)
        if session is None:
            return None
        del self.by_key[session.key]
        self._uncount(session)
        return session

    def forget_vips(self, keys: set) -> None:
        """After a reload: sessions of VIPs no longer configured (their keys not in ``keys``)
        leave the live counts (their VIP's id may go to a new VIP); their flows run on."""
        for sess in self.by_id.values():
            if sess.vip_id and (sess.key.dst_ip, sess.key.protocol, sess.key.dst_port) not in keys:
                self._uncount(sess)
                sess.vip_id = 0

    def _uncount(self, session: Session) -> None:
        if not session.vip_id:
            return
        counts = self.counts(session.vip_id)
        counts[session.backend] -= 1
        if counts[session.backend] <= 0:
            del counts[session.backend]

    def _allocate_id(self) -> int:
        # 32-bit ids (they live in the cookie's object bits); skip 0 and ids still in use.
        while True:
            sid = self._next_id
            self._next_id = sid + 1 if sid < MAX_SESSION_ID else 1
            if sid not in self.by_id:
                return sid

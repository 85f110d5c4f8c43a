"""The backend-state model: for every (VIP, backend) what the config says, what the operator
says, what dynamic feedback measured and (later) what health checks found, and the one function
that turns them into the weight every consumer uses: the controller's schedulers and the
select-group slots of ``selection: switch`` VIPs alike."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from lbapp.config import FeedbackModel, VipModel
from lbapp.feedback import Feedback
from lbapp.schedulers.base import BackendWeight
from lbapp.shared import AdminState, IPv4, VipKey, admin_weight
from lbapp.state.health import Health, Target, target_for



@dataclass
class BackendState:
    """One (VIP, backend): what the config says of it, and what its health check found. Only
    ``health`` changes, set by lbapp.handlers.verdicts; the rest comes from the config."""

    vip_id: int
    vip: VipKey
    ip: IPv4
    weight: int  # configured
    admin: AdminState  # up / drain / down, as configured (and later changed at runtime)
    check: Target | None = None  # its health check; None: not checked
    keep_on_failure: bool = False  # a failed backend's established sessions stay
    sorry: bool = False  # takes new connections only while no other backend of its VIP can
    health: Health = "unchecked"  # what its check found so far (unchecked counts as up)


class Backends:
    """Owns every (VIP, backend) state and the dynamic feedback factors. Part of the running
    state, so a reload builds a new one; in place, lbapp.handlers.verdicts sets backends' health
    and the Balancer gives ``feedback`` each round's readings."""

    def __init__(self, vips: Iterable[tuple[int, VipModel]] = (), feedback: Feedback | None = None,
                 health_of: Callable[[Target], Health] | None = None) -> None:
        """The configured backends of each (VIP id, VIP); the health of each checked one is what
        its check has found so far (``health_of``: the health checks own that; a check shared
        by several (VIP, backend)s speaks for all of them, new ones too)."""
        self.states: dict[tuple[int, IPv4], BackendState] = {}
        self.by_vip: dict[int, list[BackendState]] = {}  # per VIP, its backends in config order
        self.panic_below: dict[int, int] = {}  # per VIP, percent (lbapp.config.VipModel.panic_below)
        self.feedback = feedback
        for vip_id, vip in vips:
            key = VipKey.of(vip)
            self.panic_below[vip_id] = vip.panic_below
            in_order = self.by_vip[vip_id] = []
            for b in vip.backends:
                check = target_for(vip, b)
                settings = vip.health_of(b)
                health = health_of(check) if check is not None and health_of is not None else "unchecked"
                state = self.states[(vip_id, b.ip)] = BackendState(
                    vip_id, key, b.ip, b.weight, b.admin_state, check,
                    settings is not None and settings.on_failure == "keep", b.sorry, health)
                in_order.append(state)

    @staticmethod
    def feedback_for(settings: FeedbackModel | None, previous: Feedback | None) -> Feedback | None:
        """Dynamic feedback as configured; its factors survive unless its settings changed."""
        if settings is None:
            return None
        wanted = (settings.interval, settings.max_step, settings.min_factor, settings.max_factor)
        return previous if previous is not None and previous.settings() == wanted else Feedback(*wanted)

    def effective_weight(self, vip_id: int, ip: IPv4) -> int:
        """One backend's weight new connections are shared by (:meth:`weights`)."""
        return next(w.weight for w in self.weights(vip_id) if w.ip == ip)

    def _own_weight(self, state: BackendState, panic: bool) -> int:
        weight = admin_weight(state.weight, state.admin)
        if state.health == "down" and not panic:
            return 0
        return self.feedback.effective(state.ip, weight) if self.feedback else weight

    def in_panic(self, vip_id: int) -> bool:
        """Whether a VIP panics (Envoy's panic threshold): fewer than ``panic_below`` percent of
        its backends in service (not sorry, admin weight above 0) pass their checks, and no sorry
        server can serve. Most likely the checks' path failed, not the backends: health is then
        ignored for new connections and a failed backend's sessions stay."""
        below = self.panic_below.get(vip_id, 0)
        if not below:
            return False
        states = self.of_vip(vip_id)
        serving = [s for s in states if not s.sorry and admin_weight(s.weight, s.admin)]
        if not serving or any(s.sorry and s.health != "down" and admin_weight(s.weight, s.admin) for s in states):
            return False
        passing = sum(s.health != "down" for s in serving)
        return passing * 100 < below * len(serving)

    def weights(self, vip_id: int) -> list[BackendWeight]:
        """A VIP's backends with their effective weights, in config order: the weight new
        connections are shared by, 0 for a drained, down or failed backend, and for a sorry
        server while another backend of the VIP can take them; else the configured weight,
        scaled by dynamic feedback when it runs."""
        states = self.of_vip(vip_id)
        panic = self.in_panic(vip_id)  # once per VIP: it reads all of its backends
        own = [self._own_weight(state, panic) for state in states]
        others_serve = any(weight for state, weight in zip(states, own) if not state.sorry)
        return [BackendWeight(state.ip, 0 if state.sorry and others_serve else weight)
                for state, weight in zip(states, own)]

    def admin_weights_by_ip(self) -> dict[IPv4, int]:
        """Per backend address, its largest admin weight over the VIPs it serves: the fair share
        dynamic feedback measures load against."""
        out: dict[IPv4, int] = {}
        for state in self.states.values():
            out[state.ip] = max(out.get(state.ip, 0), admin_weight(state.weight, state.admin))
        return out

    def feedback_factor(self, ip: IPv4) -> float:
        return self.feedback.factors.get(ip, 1.0) if self.feedback else 1.0

    def of_vip(self, vip_id: int) -> list[BackendState]:
        return list(self.by_vip.get(vip_id, ()))

    def targets(self) -> set[Target]:
        """Every health check to run."""
        return {state.check for state in self.states.values() if state.check is not None}

    def checked_by(self, target: Target) -> list[BackendState]:
        """The (VIP, backend)s that ``target``'s probes speak for."""
        return [state for state in self.states.values() if state.check == target]

    def withheld_pins(self) -> frozenset[tuple[int, IPv4]]:
        """(VIP id, backend)s whose health check failed and whose sessions are not kept (nor their
        VIP panicking): their established connections are scheduled afresh."""
        return frozenset(key for key, state in self.states.items()
                         if state.health == "down" and not state.keep_on_failure and not self.in_panic(state.vip_id))

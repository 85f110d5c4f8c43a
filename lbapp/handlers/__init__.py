"""What the balancer does with each kind of event, one room per kind: new connections, ARP that
reaches the controller, health verdicts, statistics replies, sessions read back from a switch,
the overload hand-over. Each takes the state it needs as arguments and returns OpenFlow messages;
none imports :mod:`lbapp.service` (the Balancer routes events here and owns the state)."""

"""Several controllers on etcd (issue 24): one leader at a time, elected through an etcd lease;
the leader takes each switch as OpenFlow MASTER with a generation id from etcd (the revision at
which it won: it only grows), the others as SLAVE. Without etcd, ``lbapp run`` is the whole
control plane, as before.

- :mod:`lbapp.cluster.leadership`: this member's view of its lead, pure (time passed in);
- :mod:`lbapp.cluster.roles`: the OpenFlow role requests;
- :mod:`lbapp.cluster.etcd`: the etcd client (etcd3gw, etcd's v3 JSON gateway);
- :mod:`lbapp.cluster.member`: the thread that campaigns and keeps the lease.
"""

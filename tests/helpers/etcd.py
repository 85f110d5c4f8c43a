"""A real etcd cluster on loopback for tests: lbapp.labcluster's, which the labs use too."""
from lbapp.labcluster import EtcdCluster  # noqa: F401

"""lbapp: a cross-VLAN direct-routing layer-4 load balancer for Open vSwitch, as an os-ken app."""

__version__ = "0.1.0"

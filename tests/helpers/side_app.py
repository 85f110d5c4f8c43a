"""An os-ken app to run beside lbapp (``lbapp run --app tests.helpers.side_app``): it sees the
same switches connect and asks each for its port statistics, and watches packet-ins, as a
monitoring app would."""
import logging

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_3

LOG = logging.getLogger("side_app")


class SideApp(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _features(self, ev):
        dp = ev.msg.datapath
        LOG.warning("side app: switch %016x connected", ev.msg.datapath_id)
        dp.send_msg(dp.ofproto_parser.OFPPortStatsRequest(dp, 0, dp.ofproto.OFPP_ANY))

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev):
        LOG.warning("side app: packet-in from switch %016x port %d", ev.msg.datapath.id, ev.msg.match["in_port"])

    # asked while the handshake ends: the reply may come before os-ken moves the switch to MAIN
    @set_ev_cls(ofp_event.EventOFPPortStatsReply, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _port_stats(self, ev):
        LOG.warning("side app: switch %016x has %d ports", ev.msg.datapath.id, len(ev.msg.body))

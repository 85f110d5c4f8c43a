"""The balancer's YAML config: parsed into frozen models, every error named by its field path.

The models (:mod:`.models`) check each field's shape; the rules (:mod:`.rules`) check what only
the whole file can tell; :mod:`.load` runs both. Everything the rest of lbapp uses is importable
from here, so callers need not know the split.
"""
from lbapp.config.errors import ConfigError, FieldError
from lbapp.config.load import load_config, parse_config
from lbapp.config.models import (AdminState, BackendModel, BalancerModel, Config, EdgeModel, FabricatedMacModel,
                                 FeedbackModel, GatewayModel, HealthModel, IPv4, RouteModel, VipModel)

__all__ = ["AdminState", "BackendModel", "BalancerModel", "Config", "ConfigError", "EdgeModel",
           "FabricatedMacModel", "FeedbackModel", "FieldError", "GatewayModel", "HealthModel", "IPv4", "RouteModel",
           "VipModel", "load_config", "parse_config"]

"""An os-ken app whose start raises (``lbapp run --app tests.helpers.failing_app``)."""
from os_ken.base import app_manager


class FailingApp(app_manager.OSKenApp):
    def start(self):
        raise RuntimeError("this app cannot start: its database is gone")

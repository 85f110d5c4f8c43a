import itertools
import re

import pytest

from tests.helpers.net import Lab, require_tier

_numbers = itertools.count(1)


@pytest.fixture
def lab(request, tmp_path_factory):
    require_tier("OVS")
    artifacts = tmp_path_factory.mktemp(re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:40])
    lab = Lab(f"lbt{next(_numbers)}", artifacts)
    try:
        yield lab
        failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
        if failed:
            lab.save_state()
            print(f"artifacts in {artifacts}")
    finally:
        lab.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.rep_call = rep

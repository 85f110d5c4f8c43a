"""The architecture, as the import graph and the files show it: rooms stacked in layers, each
importing only from its own layer or below (so no import circle), pure logic free of os-ken's
runtime, os-ken's internals touched in one module, and no room grown past its size."""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "lbapp"

# Lowest first. A module belongs to the first layer with a prefix that names it (a package
# prefix covers its modules); it may import from its own layer and the layers below.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("ground", ("lbapp", "lbapp.shared", "lbapp.mac", "lbapp.environment", "lbapp.apitoken", "lbapp.feedback", "lbapp.metrics")),
    ("schedulers", ("lbapp.schedulers",)),
    ("config", ("lbapp.config",)),
    ("pipeline", ("lbapp.pipeline", "lbapp.packets")),
    ("state", ("lbapp.state", "lbapp.cluster.leadership")),
    ("rooms", ("lbapp.cluster.roles", "lbapp.probes", "lbapp.healthcheck", "lbapp.reload", "lbapp.handlers", "lbapp.snapshot",
               "lbapp.predict")),
    ("service", ("lbapp.service",)),
    ("tools", ("lbapp.flows", "lbapp.reference", "lbapp.trace", "lbapp.topograph", "lbapp.configedit", "lbapp.ctzone")),
    ("runtime", ("lbapp.oskenfix", "lbapp.sender", "lbapp.api", "lbapp.apientries", "lbapp.app", "lbapp.lab",
                 "lbapp.labcluster", "lbapp.labfailover", "lbapp.hangup", "lbapp.ctkeeper",
                 "lbapp.switches", "lbapp.pinreader", "lbapp.cluster")),
    ("cli", ("lbapp.cli",)),
]
RUNTIME = LAYERS.index(next(layer for layer in LAYERS if layer[0] == "runtime"))
# os-ken's runtime (its manager, controller and hub); its message classes and packet library are
# plain data and may be used anywhere
OSKEN_RUNTIME = ("os_ken.base", "os_ken.controller", "os_ken.lib.hub", "os_ken.cfg")
# attributes of os-ken objects that are its internals: only lbapp.oskenfix touches them
OSKEN_INTERNALS = {"_send_event", "observers", "send_q", "_send_q_sem", "_recv_loop", "_send_loop",
                   "_close_write", "HUB_TYPE", "_lbapp_poller", "_lbapp_out"}
MAX_MODULE_LINES = 350
MAX_BALANCER_LINES = 250


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _layer(module: str) -> int:
    best = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (index, len(prefix))
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[0]


def _imports(module: str) -> set[str]:
    """Every module ``module`` imports (at the top, in functions, or for type checking)."""
    tree = ast.parse(MODULES[module].read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{module}: relative import (lbapp imports absolutely)"
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _graph() -> nx.DiGraph:
    graph = nx.DiGraph()
    for module in MODULES:
        graph.add_node(module)
        for target in _imports(module):
            if target in MODULES and target != module:
                graph.add_edge(module, target)
    return graph


def test_every_import_goes_down_the_layers_or_stays_in_its_own():
    upward = [f"{a} ({LAYERS[_layer(a)][0]}) imports {b} ({LAYERS[_layer(b)][0]})"
              for a, b in _graph().edges if _layer(b) > _layer(a)]
    assert upward == []


def test_there_is_no_import_circle():
    graph = _graph()
    graph.remove_edges_from([(a, b) for a, b in list(graph.edges) if b == "lbapp"])  # the package's own __init__
    assert list(nx.simple_cycles(graph)) == []


def test_the_logic_below_the_runtime_imports_none_of_os_kens_runtime():
    found = [f"{module} imports {name}" for module in MODULES if _layer(module) < RUNTIME
             for name in _imports(module) if name.startswith(OSKEN_RUNTIME)]
    assert found == []


def test_only_oskenfix_touches_os_kens_internals():
    found = []
    for module, path in MODULES.items():
        if module == "lbapp.oskenfix":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            name = node.attr if isinstance(node, ast.Attribute) else None
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in OSKEN_INTERNALS:
                name = node.value  # getattr(x, "name")
            if name in OSKEN_INTERNALS:
                found.append(f"{module}:{node.lineno} {name}")
    assert found == []


def test_no_module_is_over_its_size_and_the_balancer_stays_small():
    long = {module: n for module, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}
    tree = ast.parse(MODULES["lbapp.service"].read_text())
    balancer = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Balancer")
    assert balancer.end_lineno - balancer.lineno + 1 <= MAX_BALANCER_LINES


def test_the_checks_see_an_upward_import_and_a_circle():
    """The checks above can fail: the state layer importing the service is upward, and a circle
    (the service imports the state layer)."""
    graph = _graph()
    assert not nx.has_path(graph, "lbapp.state.sessions", "lbapp.service")
    graph.add_edge("lbapp.state.sessions", "lbapp.service")
    assert _layer("lbapp.service") > _layer("lbapp.state.sessions")
    assert any({"lbapp.service", "lbapp.state.sessions"} <= set(cycle) for cycle in nx.simple_cycles(graph))

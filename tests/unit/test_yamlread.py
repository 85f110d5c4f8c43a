"""lbapp.config.yamlread: the data PyYAML's safe loader gives, from one bounded pass over
libyaml's events; what a config never needs is refused in one line saying where."""
from pathlib import Path

import pytest
import yaml

from lbapp.config.yamlread import YamlRefused, read_yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted((ROOT / "topologies").glob("*.yaml")) + sorted((ROOT / "tests" / "data").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_shipped_config_reads_as_the_safe_loader_reads_it(path):
    text = path.read_text()
    assert read_yaml(text) == yaml.safe_load(text)


@pytest.mark.parametrize("text", [
    "a: 1\nb: [x, 'y', 1.5, null, true, 2001-12-14, 0x10, 12:34:56, '1', 1, 1]\nc: {d: ~, e: '', f: !!str 5}\n",
    "- !!int '7'\n- ! 5\n- !!binary aGVsbG8=\n- !!float 1\n",
    "", "5\n", "--- {a: [[], {}]}\n...\n",
])
def test_scalars_are_typed_as_the_safe_loader_types_them(text):
    assert read_yaml(text) == yaml.safe_load(text)


@pytest.mark.parametrize("text, said", [
    ("a: 1\nb: 2\na: 3\n", "line 3: key 'a' given twice (first on line 1)"),
    ("a: &x 1\nb: *x\n", "line 2, column 4: YAML aliases (*name) are not accepted"),
    ("<<: {a: 1}\n", "line 1, column 1: YAML merge keys (<<) are not accepted"),
    ("a: !!set {x}\n", "line 1, column 4: YAML tag 'tag:yaml.org,2002:set' is not accepted"),
    ("a: !mine 1\n", "line 1, column 4: YAML tag '!mine' is not accepted"),
    ("a: !!int x\n", "line 1, column 4: 'x' is not a valid int"),
    ("--- 1\n--- 2\n", "line 2, column 1: a second YAML document (---): a config is one"),
    ("? [a]\n: 1\n", "a key that is a list or mapping"),
    ("a: " + "[" * 33 + "]" * 33 + "\n", "line 1, column 35: nested more than 32 deep"),
])
def test_what_a_config_never_needs_is_refused_in_one_line(text, said):
    with pytest.raises(YamlRefused) as refused:
        read_yaml(text)
    assert said in str(refused.value) and "\n" not in str(refused.value)


def test_text_that_is_not_yaml_is_the_parsers_error():
    with pytest.raises(yaml.YAMLError):
        read_yaml("a: [\n")

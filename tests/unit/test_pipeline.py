import pytest
from os_ken.ofproto import ofproto_v1_3 as ofp

from lbapp.pipeline import cookies
from lbapp.pipeline.tables import BY_ID, PIPELINE, TABLES, PipelineError, pipeline_doc


def test_table_ids_and_stages_are_unique_and_sparse():
    assert len({t.table_id for t in PIPELINE}) == len(PIPELINE)
    assert len({t.stage for t in PIPELINE}) == len(PIPELINE)
    # sparse and in pipeline order: room between stages (pin, added later, took 25)
    ids = [t.table_id for t in PIPELINE]
    assert ids == sorted(ids) and all(b - a >= 5 for a, b in zip(ids, ids[1:]))


def test_next_tables_only_go_forward():
    for t in PIPELINE:
        for name in t.next_tables:
            assert TABLES[name].table_id > t.table_id  # OpenFlow goto_table must go forward


def test_table_refuses_undeclared_match_field():
    with pytest.raises(PipelineError, match="does not match on tcp_src"):
        TABLES["classify"].flow("vip", {"tcp_src": 80}, cookie=cookies.make(cookies.STAGE_CLASSIFY))


def test_table_refuses_undeclared_next_table():
    with pytest.raises(PipelineError, match="may not go to 'session'"):
        TABLES["translate"].flow("fabricated", {}, cookie=cookies.make(cookies.STAGE_TRANSLATE), goto="session")


def test_table_refuses_cookie_of_another_stage():
    with pytest.raises(PipelineError, match="belongs to stage"):
        TABLES["session"].flow("connection", {}, cookie=cookies.make(cookies.STAGE_SNAT))


def test_table_refuses_unknown_priority_and_out_of_band_offset():
    with pytest.raises(PipelineError, match="declares no priority"):
        TABLES["snat"].flow("vip", {}, cookie=cookies.make(cookies.STAGE_SNAT))
    with pytest.raises(PipelineError, match="outside 100..199"):
        TABLES["next_hop"].flow("route", {}, cookie=cookies.make(cookies.STAGE_NEXT_HOP), priority_offset=100)


def test_cookie_round_trip_and_foreign_cookies():
    c = cookies.make(cookies.STAGE_SESSION, generation=7, vip=3, obj=123456)
    assert cookies.decode(c) == cookies.Cookie(cookies.STAGE_SESSION, 7, 3, 123456)
    assert cookies.decode(0) is None and not cookies.is_ours(0x1234)
    assert c & cookies.stage_mask() == cookies.make(cookies.STAGE_SESSION) & cookies.stage_mask()


def test_miss_flows_follow_declaration():
    assert TABLES["classify"].miss_flow().instructions[0].actions[0].port == ofp.OFPP_NORMAL
    assert TABLES["session"].miss_flow().instructions == []
    assert BY_ID[40].name == "next_hop"


def test_pipeline_doc_names_every_table():
    doc = pipeline_doc()
    for t in PIPELINE:
        assert f"Table {t.table_id}: {t.name}" in doc


def test_docs_pipeline_md_is_generated_from_the_declaration():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-m", "lbapp.cli.main", "pipeline"], capture_output=True, text=True,
                         cwd=root, check=True).stdout
    assert out == (root / "docs" / "pipeline.md").read_text(), "run: lbapp pipeline > docs/pipeline.md"


def test_every_declared_owner_kind_has_a_namer():
    from lbapp.flows import Namer
    from lbapp.pipeline import cookies
    from lbapp.pipeline.tables import PIPELINE

    namer = Namer(None)
    for table in PIPELINE:
        assert set(table.owners) <= set(table.priorities), table.name
        for kind in table.owners.values():
            if not kind.startswith("="):
                assert namer.name(kind, cookies.Cookie(table.stage, 1, 1, 1))

"""The OpenFlow pipeline: the declaration (tables, cookies) and one builder module per stage."""

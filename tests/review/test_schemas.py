"""The review's schemas: strict objects, defaults for every key, versioned documents."""

from __future__ import annotations

import pytest

from tmpipe.review.schema_ids import EVIDENCE, REVIEW_SECTION, SIGNAL, TRACE, fill_defaults, load_schema, schema_problems


def _objects(node, path="$"):
    if isinstance(node, dict):
        if node.get("type") == "object" or ("object" in (node.get("type") or []) and "properties" in node):
            yield path, node
        for key, value in node.items():
            yield from _objects(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _objects(value, f"{path}[{index}]")


def test_review_section_gives_every_leaf_a_default_and_rejects_unknown_keys():
    for path, node in _objects(load_schema(REVIEW_SECTION)):
        # Closed objects, or maps keyed by a name (model_client.prices) whose values are closed.
        assert node.get("additionalProperties") is False or "propertyNames" in node, path
        for key, prop in node.get("properties", {}).items():
            if prop.get("type") != "object" and key not in node.get("required", ()):  # agents[] name, role; a price
                assert "default" in prop, f"{path}.{key}"
    assert schema_problems(fill_defaults({}), REVIEW_SECTION) == []


def test_section_defaults_match_the_config_resolver_layer_one():
    from tmpipe.spec import schemas

    assert fill_defaults(schemas.fill_defaults(schemas.STAGE_CONFIG)["review"]) == fill_defaults({})


@pytest.mark.parametrize("name, urn, version", [(SIGNAL, "urn:tmpipe:trading_signal", 1), (TRACE, "urn:tmpipe:llm_artifact", 2),
                                                (EVIDENCE, "urn:tmpipe:evidence", 1)])
def test_documents_are_versioned_and_strict(name, urn, version):
    schema = load_schema(name)
    assert schema["$id"] == urn and schema["$schema"].endswith("2020-12/schema")
    assert schema["properties"]["schema_version"] == {"const": version}
    assert schema["additionalProperties"] is False


def test_signal_schema_rejects_unknown_keys_and_inconsistent_holds(evidence, review_config):
    from tmpipe.review import review_signal

    signal = review_signal(evidence, review_config, symbol="AAPL").signal
    assert schema_problems({**signal, "wire_funds": "all"}, SIGNAL)
    assert schema_problems({**signal, "action": "HOLD"}, SIGNAL)  # HOLD with stop loss and a position
    assert schema_problems({**signal, "review_status": "fallback"}, SIGNAL)  # fallback needs a cause and HOLD

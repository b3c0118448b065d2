"""Policy document text to plain data, strictly."""

from __future__ import annotations

import time

import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]

from policies import load
from policies.load import MAX_BYTES, MAX_DEPTH, load_mapping
from service.errors import PayloadTooLarge, PolicyInvalid

CANARY = "CANARY-7f3a"
YAML = "application/yaml"
JSON = "application/json"


def refusal(text: str | bytes, media_type: str = YAML) -> str:
    with pytest.raises(PolicyInvalid) as caught:
        load_mapping("payments", text, media_type)
    return caught.value.message


def test_yaml_mapping_is_loaded() -> None:
    assert load_mapping("payments", "a: 1\nb: [x, y]\n", YAML) == {
        "a": 1,
        "b": ["x", "y"],
    }


@pytest.mark.parametrize(
    "media_type",
    ["application/json", "application/json; charset=utf-8", "text/plain", ""],
    ids=["json", "json-with-parameter", "unknown-type-read-as-yaml", "no-type"],
)
def test_json_is_loaded_whatever_the_media_type(media_type: str) -> None:
    assert load_mapping("payments", '{"a": {"b": [1]}}', media_type) == {
        "a": {"b": [1]}
    }


@pytest.mark.parametrize("text", ["", "# only a comment\n", b""], ids=repr)
def test_empty_text_is_an_empty_mapping(text: str | bytes) -> None:
    assert load_mapping("payments", text, YAML) == {}


def test_bytes_with_a_byte_order_mark_are_read_as_utf8() -> None:
    assert load_mapping("payments", b'\xef\xbb\xbf{"a": 1}', JSON) == {"a": 1}


def test_yaml_syntax_error_names_document_and_line_not_content() -> None:
    message = refusal(f"a: 1\nb: [{CANARY}\n")

    assert message == "policy 'payments': line 3: not valid YAML"


def test_json_syntax_error_names_document_and_line_not_content() -> None:
    message = refusal(f'{{"a": 1,\n "{CANARY}"}}', JSON)

    assert message == "policy 'payments': line 2: not valid JSON"


def test_duplicate_yaml_key_is_refused_with_its_line() -> None:
    message = refusal("deny: [a]\nread: [b]\ndeny: [c]\n")

    assert message == "policy 'payments': line 3: duplicate key"


def test_duplicate_json_key_is_refused() -> None:
    message = refusal('{"deny": ["a"], "deny": ["b"]}', JSON)

    assert message == "policy 'payments': duplicate key in a JSON object"


def test_yaml_aliases_are_refused() -> None:
    message = refusal("a: &grants [x]\nb: *grants\n")

    assert (
        message
        == "policy 'payments': line 2: YAML anchors and aliases are not supported"
    )


def test_yaml_merge_keys_are_refused() -> None:
    message = refusal("a:\n  <<: {deny: [x]}\n  read: [y]\n")

    assert "merge keys are not supported" in message


def test_yaml_python_tags_are_refused() -> None:
    message = refusal("a: !!python/object/apply:os.system [echo]\n")

    assert message == "policy 'payments': line 1: not valid YAML"


def test_several_yaml_documents_in_one_text_are_refused() -> None:
    assert "not valid YAML" in refusal("a: 1\n---\nb: 2\n")


def test_deep_nesting_is_refused() -> None:
    assert "nested too deeply" in refusal("a: " + "[" * 100 + "]" * 100)


@pytest.mark.parametrize(
    "text",
    [
        "a: " + "[" * 5000 + "]" * 5000,
        "a: " + "{b: " * 5000 + "}" * 5000,
        "".join(f"{'  ' * level}k:\n" for level in range(200)),
        "".join(f"{'  ' * level}- \n" for level in range(200)),
    ],
    ids=["flow-sequences", "flow-mappings", "block-mappings", "block-sequences"],
)
def test_deep_nesting_is_refused_before_the_document_is_read(text: str) -> None:
    started = time.monotonic()

    assert refusal(text).startswith("policy 'payments': line ")
    assert "nested too deeply" in refusal(text)
    assert time.monotonic() - started < 1


def test_without_libyaml_deep_nesting_is_still_refused_quickly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pure-Python parser is the fallback; it stops at the limit too."""
    monkeypatch.setattr(load, "_LOADER", yaml.SafeLoader)
    started = time.monotonic()

    assert "nested too deeply" in refusal("a: " + "[" * 5000 + "]" * 5000)
    assert time.monotonic() - started < 2


def test_nesting_up_to_the_limit_is_read() -> None:
    text = "a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)

    assert load_mapping("payments", text, YAML) is not None
    assert "nested too deeply" in refusal("a: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH)


def test_json_nan_is_refused() -> None:
    assert "NaN" in refusal('{"a": NaN}', JSON)


def test_text_that_is_not_utf8_is_refused() -> None:
    assert refusal(b"a: \xff\n") == "policy 'payments': not UTF-8 text"


@pytest.mark.parametrize(
    "text", ["- a\n- b\n", "just text\n", "[1]"], ids=["list", "scalar", "json-list"]
)
def test_top_level_must_be_a_mapping(text: str) -> None:
    assert refusal(text) == "policy 'payments': the top level must be a mapping"


def test_oversized_text_is_refused_before_parsing() -> None:
    with pytest.raises(PayloadTooLarge):
        load_mapping("payments", "a: " + "x" * MAX_BYTES, YAML)

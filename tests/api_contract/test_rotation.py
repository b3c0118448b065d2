"""Rotation on demand over the HTTP API, and who has moved, on every backend kind."""

from __future__ import annotations

from typing import Any

from tests.api_contract.api import Api


def rotate(api: Api, name: str) -> dict[str, Any]:
    response = api.call("POST", f"secrets/{name}/rotate")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def services(api: Api, name: str) -> dict[str, tuple[str, bool]]:
    """Each consumer's latest version and whether it is the current one."""
    response = api.call("GET", f"secrets/{name}/consumers")
    assert response.status_code == 200, response.text
    return {
        entry["service"]: (entry["version"], entry["on_current"])
        for entry in response.json()["services"]
    }


def test_rotation_on_demand_makes_a_new_current_version(api: Api, place: str) -> None:
    """`POST rotate` answers the record; current then reads the new version."""
    first = api.version_of(api.put(f"{place}db", "<PW1>"))

    record = rotate(api, f"{place}db")
    current = api.get(f"{place}db").json()

    assert (record["state"], record["old_version"]) == ("grace", first)
    assert current["version"] == record["new_version"] != first
    assert current["value"] != "<PW1>"


def test_rotated_secret_keeps_the_old_value_as_previous(api: Api, place: str) -> None:
    """During grace the old value reads by stage and by its id."""
    first = api.version_of(api.put(f"{place}db", "<PW1>"))

    rotate(api, f"{place}db")
    previous = api.get(f"{place}db", stage="previous").json()
    by_version = api.get(f"{place}db", version=first).json()

    assert (previous["version"], previous["value"]) == (first, "<PW1>")
    assert by_version["value"] == "<PW1>"


def test_rotation_record_shows_every_step_done(api: Api, place: str) -> None:
    """create, set, test and finish each ran once and succeeded."""
    api.version_of(api.put(f"{place}db", "<PW1>"))

    record = rotate(api, f"{place}db")

    assert [(s["step"], s["outcome"]) for s in record["steps"]] == [
        ("create", "done"), ("set", "done"), ("test", "done"), ("finish", "done"),
    ]  # fmt: skip


def test_consumers_show_who_has_moved_to_the_new_version(api: Api, place: str) -> None:
    """One service read the old version, the other the new one."""
    first = api.version_of(api.put(f"{place}db", "<PW1>"))
    assert api.get(f"{place}db", who="svc-a").status_code == 200

    new = rotate(api, f"{place}db")["new_version"]
    assert api.get(f"{place}db", who="svc-b").status_code == 200

    assert services(api, f"{place}db") == {
        "svc-a": (first, False), "svc-b": (new, True),
    }  # fmt: skip


def test_a_consumer_that_reads_again_has_moved(api: Api, place: str) -> None:
    """A service that read the old version and then the new one is on current."""
    api.version_of(api.put(f"{place}db", "<PW1>"))
    assert api.get(f"{place}db", who="svc-a").status_code == 200
    new = rotate(api, f"{place}db")["new_version"]
    api.clock.advance(1)

    assert api.get(f"{place}db", who="svc-a").status_code == 200

    assert services(api, f"{place}db") == {"svc-a": (new, True)}


def test_reads_of_old_and_new_at_one_instant_count_as_moved(
    api: Api, place: str
) -> None:
    """Two last reads with the same timestamp: the current one decides."""
    api.version_of(api.put(f"{place}db", "<PW1>"))
    assert api.get(f"{place}db", who="svc-a").status_code == 200
    new = rotate(api, f"{place}db")["new_version"]

    assert api.get(f"{place}db", who="svc-a").status_code == 200

    assert services(api, f"{place}db") == {"svc-a": (new, True)}

"""The pure half of the registry protocol: plans, their inverses, consistency rules, tag encoding."""

from __future__ import annotations

import json

import pytest

from pipeline.history import render
from pipeline.registry_rules import (
    Op,
    RegistryRefusal,
    Snapshot,
    describe,
    disagreements,
    history_op,
    make_entry,
    parse_history,
    parse_verdict,
    plan,
    promotion,
    registration,
    rollback,
    verdict_tags,
)


def snap(stages, aliases, tags=None, verdicts: dict[str, bool] | None = None) -> Snapshot:
    """A snapshot of 'options-pricer'; `verdicts` = {version: passed} as gate tags."""
    version_tags = {v: verdict_tags(ok, ["why"], None) for v, ok in (verdicts or {}).items()}
    return Snapshot("options-pricer", stages, aliases, tags or {}, version_tags)


def test_promotion_plan_moves_in_before_out_and_sets_aliases_before_removing():
    before = snap({"1": "Production", "2": "Staging"}, {"production": "1", "staging": "2"})
    ops = plan(
        before,
        {"1": "Archived", "2": "Production"},
        {"production": "2", "previous-production": "1", "staging": None},
    )
    assert ops == [
        Op("stage", "2", "Production", "Staging"),
        Op("stage", "1", "Archived", "Production"),
        Op("alias", "production", "2", "1"),
        Op("alias", "previous-production", "1", None),
        Op("alias", "staging", None, "2"),
    ]


def test_plan_skips_what_already_holds_and_ops_invert_exactly():
    before = snap({"1": "Staging"}, {"staging": "1"})
    assert plan(before, {"1": "Staging"}, {"staging": "1"}) == []
    op = Op("alias", "staging", None, "1")
    assert op.inverse() == Op("alias", "staging", "1", None) and op.inverse().inverse() == op
    assert Op("stage", "3", "Staging", None).describe() == "move v3 from stage None to Staging"


PROD = snap(
    {"1": "Archived", "2": "Production", "3": "Staging"},
    {"previous-production": "1", "production": "2", "staging": "3"},
    verdicts={"3": True},
)


def test_promotion_plan_and_entry():
    ops, entry = promotion(PROD, None, False, None, user="ann")
    assert ops[:-1] == [
        Op("stage", "3", "Production", "Staging"),
        Op("stage", "2", "Archived", "Production"),
        Op("alias", "production", "3", "2"),
        Op("alias", "previous-production", "2", "1"),
        Op("alias", "staging", None, "3"),
    ]
    assert ops[-1].kind == "tag" and json.loads(ops[-1].new) == entry
    assert (entry["from_version"], entry["to_version"], entry["forced"], entry["gate"]) == (
        "2",
        "3",
        False,
        "passed",
    )


@pytest.mark.parametrize(
    ("state", "kwargs", "message"),
    [
        (PROD, {"force": True, "reason": " "}, "force needs a reason"),
        (snap({"1": "Staging"}, {"staging": "1"}), {}, "v1 has no gate verdict: evaluate it first"),
        (
            snap({"1": "Staging"}, {"staging": "1"}, verdicts={"1": False}),
            {},
            r"v1 failed the gate \(why\)",
        ),
        (
            PROD,
            {"version": "2"},
            "v2 of 'options-pricer' is in stage Production, not Staging.*v3 is in Staging",
        ),
        (PROD, {"version": "9"}, "v9 of 'options-pricer' does not exist"),
        (snap({"1": "Production"}, {"production": "1"}), {}, "nothing in Staging to promote"),
    ],
)
def test_promotion_refusals(state, kwargs, message):
    with pytest.raises(RegistryRefusal, match=message):
        promotion(state, kwargs.get("version"), kwargs.get("force", False), kwargs.get("reason"))


def test_forced_promotion_is_marked_forced():
    state = snap({"1": "Staging"}, {"staging": "1"}, verdicts={"1": False})
    _, entry = promotion(state, None, True, "hotfix")
    assert entry["forced"] is True and entry["gate"] == "failed" and entry["reason"] == "hotfix"
    _, entry = promotion(
        PROD, None, True, "belt and braces"
    )  # force on a passed verdict: not forced
    assert entry["forced"] is False


def test_rollback_plan_and_refusals():
    ops, entry = rollback(PROD, "bad fills")
    assert ops[:-1] == [
        Op("stage", "1", "Production", "Archived"),
        Op("stage", "2", "Archived", "Production"),
        Op("alias", "production", "1", "2"),
        Op("alias", "previous-production", None, "1"),
    ]
    assert (entry["action"], entry["from_version"], entry["to_version"]) == ("rollback", "2", "1")
    with pytest.raises(RegistryRefusal, match="rollback needs a reason"):
        rollback(PROD, None)
    after = snap(
        {"1": "Production", "2": "Archived"},
        {"production": "1"},
        tags={"history.000001": json.dumps(entry)},
    )
    with pytest.raises(RegistryRefusal, match="the last rollback used it .*would redeploy"):
        rollback(after, "again")


def test_registration_archives_the_old_candidate():
    ops = registration(snap({"1": "Staging"}, {"staging": "1"}), "2", "run-2")
    assert ops[:-1] == [
        Op("stage", "2", "Staging", None),
        Op("stage", "1", "Archived", "Staging"),
        Op("alias", "staging", "2", "1"),
    ]
    assert json.loads(ops[-1].new)["run_id"] == "run-2"


def test_history_keys_are_sequential_and_read_back_in_order():
    tags = {
        "history.000002": json.dumps({"n": 2}),
        "history.000001": json.dumps({"n": 1}),
        "history.000003": "{not json",
        "owner": "quants",
    }
    assert [e["n"] for e in parse_history(tags)] == [1, 2]
    op = history_op(snap({}, {}, tags), {"n": 4})
    assert (op.key, json.loads(op.new), op.old) == ("history.000004", {"n": 4}, None)
    assert history_op(snap({}, {}), {}).key == "history.000001"


def test_entries_record_who_when_why(monkeypatch):
    monkeypatch.setenv("USER", "carol")
    entry = make_entry("promote", "1", "2", "  hotfix " + "x" * 2000, forced=True)
    assert entry["user"] == "carol" and entry["forced"] is True
    assert entry["reason"].startswith("hotfix") and len(entry["reason"]) == 1000
    assert make_entry("rollback", "2", "1", "", user="dan")["reason"] is None
    assert describe(entry).startswith(
        "promote v1 → v2 by carol at "
    ) and "(forced past the gate)" in describe(entry)


def test_verdict_tags_round_trip_and_verdict_is_written_last():
    tags = verdict_tags(False, ["too slow"], {"rmse": 0.1, "bad": float("inf")})
    assert list(tags)[-1] == "gate.verdict"
    parsed = parse_verdict(tags)
    assert (parsed["verdict"], parsed["passed"], parsed["reasons"]) == (
        "failed",
        False,
        ["too slow"],
    )
    assert parsed["metrics"] == {"rmse": 0.1, "bad": None}
    assert parse_verdict({"gate.reasons": "[]"}) is None  # half-written: no verdict


def row(version, stage, *aliases):
    return {"version": version, "stage": stage, "aliases": list(aliases)}


def test_disagreements():
    assert (
        disagreements(
            [
                row("1", "Archived", "previous-production"),
                row("2", "Production", "production"),
                row("3", "Staging", "staging"),
                row("4", "Archived"),
            ]
        )
        == []
    )
    problems = disagreements(
        [
            row("1", "Production"),
            row("2", "Production", "production", "staging"),
            row("3", "Staging", "previous-production"),
        ]
    )
    assert problems == [
        "alias 'staging' points at v2, whose stage is Production, not Staging",
        "v3 is in stage Staging but alias 'staging' does not point at it",
        "2 versions in stage Production (v1, v2); expected one at most",
        "v1 is in stage Production but alias 'production' does not point at it",
        "alias 'previous-production' points at v3, whose stage is Staging, not Archived",
    ]


def test_render_lists_history_state_and_problems():
    entries = [make_entry("register", None, "1", user="eve")]
    state = [
        {
            "version": "1",
            "stage": "Staging",
            "aliases": ["staging"],
            "verdict": None,
            "run_id": "abc",
            "created": "2026-03-31T20:00:00+00:00",
        }
    ]
    text = render("options-pricer", entries, state, ["something off"])
    assert "register  none → v1  eve" in text
    assert "1        Staging  staging  -        abc" in text
    assert text.rstrip().endswith("- something off")
    assert "(no entries)" in render("m", [], [], []) and "(no versions registered)" in render(
        "m", [], [], []
    )

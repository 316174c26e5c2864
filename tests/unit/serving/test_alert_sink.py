"""The registry-following service's alert sink is named in configs/serving, not imported."""

import logging

from serving.model_holder import RegistrySource

CALLS: list[tuple] = []


def record(kind, message, details):
    CALLS.append((kind, message, details))


def test_the_named_sink_gets_the_rollback_alert(tmp_path, restore_tracking):
    CALLS.clear()
    source = RegistrySource(f"sqlite:///{tmp_path}/m.db", "options-pricer", "production",
                            alert_sink=f"{__name__}:record")  # fmt: skip
    source.alert("v3 failed its self-check", {"version": "3"})
    assert CALLS == [("deploy_rollback", "v3 failed its self-check", {"version": "3"})]


def test_without_a_sink_the_alert_is_logged(tmp_path, restore_tracking, caplog):
    source = RegistrySource(f"sqlite:///{tmp_path}/m.db", "options-pricer", "production")
    with caplog.at_level(logging.WARNING, logger="serving.model"):
        source.alert("v3 failed its self-check", {"version": "3"})
    assert "deploy_rollback alert" in caplog.text and "v3 failed" in caplog.text


def test_the_shipped_sink_is_the_projects_alert_module(make_cfg):
    import pkgutil

    from monitoring import alerts

    sink = make_cfg().serving.alert_sink
    assert pkgutil.resolve_name(sink) is alerts.serving_alert

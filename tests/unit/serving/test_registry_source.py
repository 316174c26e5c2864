"""RegistrySource resolves the alias with MLflow's client itself (the service does not import
pipeline.registry): "not found" is no version, any other failure a RegistryUnavailable naming the
registry (no credentials) and the call, which the holder reports as a registry that did not answer.
"""

from __future__ import annotations

import warnings

import mlflow
import pytest
from mlflow.exceptions import MlflowException

from serving.errors import RegistryUnavailable, ReloadFailed
from serving.model_holder import FALLBACK_ALIAS, ModelHolder, RegistrySource


def test_an_alias_resolves_to_its_version_and_a_missing_one_to_none(tmp_path, restore_tracking):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    source = RegistrySource(uri, "options-pricer", "production")
    assert source.resolve() is None  # no such model yet: RESOURCE_DOES_NOT_EXIST
    client = mlflow.MlflowClient(uri)
    client.create_registered_model("options-pricer")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(2):
            client.create_model_version("options-pricer", source=str(tmp_path / "model"))
    client.set_registered_model_alias("options-pricer", "production", "2")
    assert source.resolve() == ("2", None)
    assert source.resolve_fallback() is None  # no version holds it: INVALID_PARAMETER_VALUE
    client.set_registered_model_alias("options-pricer", FALLBACK_ALIAS, "1")
    assert source.resolve_fallback() == ("1", None)


class Unreachable:
    def get_model_version_by_alias(self, name, alias):
        raise ConnectionError("Max retries exceeded with url: /api/2.0/mlflow/...  (refused)")


class Refusing:
    def get_model_version_by_alias(self, name, alias):
        raise MlflowException("permission denied", error_code="PERMISSION_DENIED")


@pytest.mark.parametrize("client", [Unreachable(), Refusing()])
def test_a_failing_registry_is_named_without_its_credentials(client, restore_tracking):
    source = RegistrySource("https://alice:s3cret@registry.test", "options-pricer", "production")
    source.client = client
    with pytest.raises(RegistryUnavailable) as failed:
        source.resolve()
    message = str(failed.value)
    assert message.startswith(
        "model registry at https://***@registry.test: "
        "get_model_version_by_alias('options-pricer', 'production') failed: "
    )
    assert "s3cret" not in message and "alice" not in message
    with pytest.raises(RegistryUnavailable, match=f"'options-pricer', '{FALLBACK_ALIAS}'"):
        source.resolve_fallback()
    with pytest.raises(
        ReloadFailed, match="the registry did not answer for options-pricer@production"
    ):
        ModelHolder(source).reload()

"""The service's unit tests share one ASGI app per test session.

BentoML registers its request metrics in the process-wide Prometheus registry when an app first
serves a request, so a second app object in the same process fails to start (DuplicateTimeseries).
test_service.py and test_service_reliability.py both build the app (`Service.to_asgi()`): here
every call returns the first app built, as if one module had built it for all.
"""

from __future__ import annotations

import warnings

import pytest


@pytest.fixture(scope="session", autouse=True)
def one_asgi_app_per_session():
    with warnings.catch_warnings():  # BentoML's own deprecation notices (see test_service.py)
        warnings.simplefilter("ignore")
        from _bentoml_sdk.service.factory import Service

    build, apps = Service.to_asgi, {}

    def shared_app(self, is_main: bool = True):
        if (id(self), is_main) not in apps:
            apps[id(self), is_main] = build(self, is_main)
        return apps[id(self), is_main]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Service, "to_asgi", shared_app)
        yield

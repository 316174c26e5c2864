"""public_text: error text fit to show outside the machine."""

from __future__ import annotations

import pytest

from pipeline.public_text import public_text, without_credentials

TRACE = (
    "XGBoostError: [14:37:42] /build/src/data/data.cc:1196: Check failed: valid: Input data "
    "contains `inf` Stack trace: [bt] (0) /opt/venv/lib/libxgboost.so(+0x11031e) [0x7f8ee891031e] "
    "[bt] (1) /opt/venv/lib/libxgboost.so(+0x4b0305) [0x7f8ee8cb0305]"
)


@pytest.mark.parametrize("cut", [len(TRACE), 150, 190, 200, 210, 233, 260])
def test_a_native_stack_trace_goes_wherever_the_message_was_cut(cut):
    """Callers cut a long message to a length first: the cut may land inside a frame, and
    whatever is left of the trace must still go (the path depends on where the venv lives)."""
    shown = public_text(TRACE[:cut] + "; no model is loaded")
    assert (
        shown == "XGBoostError: Check failed: valid: Input data contains `inf`; no model is loaded"
    )


def test_paths_are_cut_to_their_last_part_and_tracebacks_to_their_exception():
    text = (
        "could not open /home/me/registry/mlflow.db\nTraceback (most recent call last):\n"
        '  File "/home/me/x.py", line 1, in <module>\nValueError: bad'
    )
    assert public_text(text) == "could not open …/mlflow.db ValueError: bad"


def test_credentials_in_a_uri_are_masked():
    assert (
        without_credentials("postgresql+psycopg2://me:secret@127.0.0.1:5432/mlflow")
        == "postgresql+psycopg2://***@127.0.0.1:5432/mlflow"
    )
    assert without_credentials("sqlite:///x/mlflow.db") == "sqlite:///x/mlflow.db"

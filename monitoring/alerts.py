"""One alert sink for the original plan's failure points (docs/RUNBOOK.md: one section per kind).

`send(alert, cfg)` always
- logs the alert on the logger ``pipeline.alerts`` (ERROR or WARNING; inside a task it lands in
  the task's log file too), and
- appends it as one JSON line to ``alerts.log_path`` (``logs/alerts.jsonl``);
and, when a webhook URL is configured (``alerts.webhook_url``, overridden by the environment
variable ``ALERT_WEBHOOK_URL``; empty = off), POSTs Slack-compatible JSON (``text`` + ``blocks``)
to it on a daemon thread, with the platform's tenacity policy (pipeline.retry: exponential backoff
with jitter; 5xx, 429 and connection errors are retried, other 4xx are not). The pipeline never
waits for the webhook and never fails because of it: delivery errors are logged. At process exit,
undelivered alerts get at most ``alerts.exit_wait_s`` seconds (`flush`).

Kinds (severity): schema_change, null_rate_spike, bad_rows_halt, deploy_rollback, task_failed
(error); failed_gate, retrain_triggered (warning). A failing task raises one alert: `kind_of` maps
the exception to its kind (a schema change, a null-rate spike or too many bad rows halting
data_validate; anything else is task_failed), unless the task already raised a more specific one
for the same failure (deploy_rollback: `_incident` alerts, then fails the task).

Hooks: pipeline.runtime.execute (`task_failed`), pipeline.model_evaluate (`gate_verdict`),
pipeline.model_deploy._incident (`deploy_rollback`), pipeline.monitor (`retrain_decision`).
"""

from __future__ import annotations

import atexit
import datetime as dt
import functools
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import DataError, SchemaChangeError
from pipeline.retry import attempts_made, build_retrying

log = logging.getLogger("pipeline.alerts")

ENV_WEBHOOK = "ALERT_WEBHOOK_URL"
KINDS = {
    "schema_change": "error",
    "null_rate_spike": "error",
    "bad_rows_halt": "error",
    "failed_gate": "warning",
    "deploy_rollback": "error",
    "retrain_triggered": "warning",
    "task_failed": "error",
}
RUNBOOK = "docs/RUNBOOK.md"
_EMOJI = {"error": ":rotating_light:", "warning": ":warning:"}


@dataclass(frozen=True)
class Alert:
    kind: str
    severity: str  # error | warning
    task: str
    date: str | None  # the business date (YYYY-MM-DD)
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))

    @classmethod
    def of(cls, kind: str, task: str, date: Any, message: str, **details: Any) -> Alert:
        """An alert of a known kind, with that kind's severity."""
        if kind not in KINDS:
            raise ValueError(f"unknown alert kind {kind!r}; expected one of {list(KINDS)}")
        return cls(kind, KINDS[kind], task, None if date is None else str(date), message, details)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=str))

    def title(self) -> str:
        on = f" for {self.date}" if self.date else ""
        return f"[{self.severity.upper()}] {self.kind}: {self.task}{on}"

    def slack_payload(self) -> dict[str, Any]:
        """Slack incoming-webhook JSON: `text` (what every Slack-compatible receiver shows) and
        `blocks` (Slack's richer rendering)."""
        text = f"{_EMOJI.get(self.severity, '')} {self.title()}: {self.message}".strip()
        facts = [f"*{k}*: {_short(v)}" for k, v in self.details.items()]
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}},
        ]
        if facts:
            facts_text = "\n".join(facts)[:2900]
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": facts_text}})
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": f"runbook: {RUNBOOK}#{self.kind} · {self.at}"}
                ],
            }
        )
        return {"text": text, "blocks": blocks}


def _short(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------
# the sink


def settings(cfg: Any) -> Any:
    """The `alerts` node of a full config (or the node itself)."""
    if isinstance(cfg, Mapping) and "alerts" in cfg:
        return cfg["alerts"]
    return getattr(cfg, "alerts", cfg)


def webhook_url(cfg: Any) -> str | None:
    """ALERT_WEBHOOK_URL if set (empty: off), else alerts.webhook_url; None when off."""
    url = os.environ.get(ENV_WEBHOOK)
    if url is None:
        url = _get(settings(cfg), "webhook_url", None)
    url = str(url or "").strip()
    return url or None


def _get(node: Any, key: str, default: Any) -> Any:
    if isinstance(node, Mapping):
        return node.get(key, default) if key in node else default
    return getattr(node, key, default)


def send(alert: Alert, cfg: Any) -> threading.Thread | None:
    """Log the alert, append it to the alerts log and, with a webhook, start its delivery.

    Returns the delivery thread (None without a webhook). Never raises: a broken sink is logged.
    """
    try:
        s = settings(cfg)
        log.log(
            logging.ERROR if alert.severity == "error" else logging.WARNING,
            "ALERT %s: %s%s",
            alert.title(),
            alert.message,
            f" {_short(alert.details, 1000)}" if alert.details else "",
        )
        url = webhook_url(cfg)
        _append(alert, _get(s, "log_path", None), webhook=url is not None)
        _count(alert, cfg)
        if url is None:
            return None
        return _start_delivery(url, alert.slack_payload(), s)
    except Exception:  # noqa: BLE001 - an alert must never fail the pipeline
        log.exception("alert sink failed for %s", alert.kind)
        return None


def _append(alert: Alert, path: Any, *, webhook: bool) -> None:
    if not path:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(alert.to_dict() | {"webhook": webhook}, default=str) + "\n"
    # one write() of one line on an O_APPEND file: concurrent writers do not interleave
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)


def _count(alert: Alert, cfg: Any) -> None:
    path = _get(settings(cfg), "prom_textfile", None)
    if path:
        from monitoring import prom_textfile

        prom_textfile.record_alert(path, alert.kind, alert.severity)


def read_alerts(path: str | Path) -> list[dict[str, Any]]:
    """The alerts log as a list of dicts (oldest first); [] when it does not exist."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------
# the webhook


class WebhookError(Exception):
    """A delivery attempt that may succeed later (5xx, 429, timeout, connection refused)."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class WebhookRejected(Exception):
    """The receiver refused the alert (4xx other than 429): retrying would not help."""


def _redact(url: str) -> str:
    """scheme://host[:port] only: a Slack webhook URL's path is its secret."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def post(url: str, payload: dict[str, Any], timeout_s: float) -> int:
    """One POST of `payload` as JSON; the HTTP status, or WebhookError/WebhookRejected."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise WebhookRejected(f"webhook URL must be http(s)://, got {_redact(url)!r}")
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "options-mlops-alerts"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - http(s) checked
            return int(response.status)
    except urllib.error.HTTPError as exc:
        if exc.code >= 500 or exc.code == 429:
            raise WebhookError(f"HTTP {exc.code}", _retry_after(exc)) from None
        raise WebhookRejected(f"HTTP {exc.code} from {_redact(url)}") from None
    except (urllib.error.URLError, OSError) as exc:  # refused, DNS, timeout
        raise WebhookError(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}") from None


def _retry_after(exc: urllib.error.HTTPError) -> float | None:
    try:
        return float(exc.headers.get("Retry-After")) if exc.headers else None
    except (TypeError, ValueError):
        return None


def deliver(
    url: str,
    payload: dict[str, Any],
    cfg: Any,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """POST with retries (alerts.retries, exponential backoff from alerts.base_delay_s capped at
    alerts.max_delay_s, jitter, Retry-After honoured); True when delivered. Never raises."""
    s = settings(cfg)
    policy = {
        "max_retries": int(_get(s, "retries", 3)),
        "backoff": "exponential",
        "base_delay": float(_get(s, "base_delay_s", 0.5)),
        "max_delay": float(_get(s, "max_delay_s", 4.0)),
        "jitter": True,
    }

    def before_sleep(state) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "alert webhook %s: attempt %d failed (%s); retrying in %.2fs",
            _redact(url),
            state.attempt_number,
            exc,
            state.next_action.sleep if state.next_action else 0.0,
        )

    try:
        retrying = build_retrying(
            policy, retry_on=WebhookError, sleep=sleep, before_sleep=before_sleep
        )
        status = retrying(post, url, payload, float(_get(s, "timeout_s", 3.0)))
    except Exception as exc:  # noqa: BLE001 - logged, never raised
        attempts = attempts_made(retrying) if "retrying" in locals() else 0
        log.error(
            "alert webhook %s: not delivered after %d attempt(s): %s",
            _redact(url),
            attempts,
            exc,
        )
        return False
    log.info(
        "alert webhook %s: delivered (HTTP %s, attempt %d)",
        _redact(url),
        status,
        attempts_made(retrying),
    )
    return True


_PENDING: set[threading.Thread] = set()
_PENDING_LOCK = threading.Lock()
_EXIT_WAIT = [10.0]


def _start_delivery(url: str, payload: dict[str, Any], s: Any) -> threading.Thread:
    def run() -> None:
        try:
            deliver(url, payload, s)
        finally:
            with _PENDING_LOCK:
                _PENDING.discard(threading.current_thread())

    thread = threading.Thread(target=run, name="alert-webhook", daemon=True)
    with _PENDING_LOCK:
        _PENDING.add(thread)
        _EXIT_WAIT[0] = float(_get(s, "exit_wait_s", _EXIT_WAIT[0]))
    thread.start()
    return thread


def pending() -> int:
    """Deliveries still in flight."""
    with _PENDING_LOCK:
        return sum(t.is_alive() for t in _PENDING)


def flush(timeout_s: float | None = None) -> bool:
    """Wait for in-flight deliveries, at most `timeout_s` in total (default alerts.exit_wait_s);
    True when none is left. Runs at interpreter exit, so a failing run still gets its alert out."""
    deadline = time.monotonic() + (_EXIT_WAIT[0] if timeout_s is None else timeout_s)
    with _PENDING_LOCK:
        threads = list(_PENDING)
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    left = pending()
    if left:
        log.error("%d alert webhook deliveries still pending at exit; see the alerts log", left)
    return left == 0


atexit.register(flush)


# ---------------------------------------------------------------------------------------------
# hooks


def _guarded(
    hook: Callable[..., threading.Thread | None],
) -> Callable[..., threading.Thread | None]:
    """A hook never raises into the task that calls it: a failure is logged."""

    @functools.wraps(hook)
    def wrapper(*args: Any, **kwargs: Any) -> threading.Thread | None:
        try:
            return hook(*args, **kwargs)
        except Exception:  # noqa: BLE001
            log.exception("alert hook %s failed", hook.__name__)
            return None

    return wrapper


_ALERTED: set[tuple[str, str | None]] = set()  # (task, date) that already raised their alert
_ALERTED_LOCK = threading.Lock()


def kind_of(exc: BaseException) -> str:
    """The alert kind of a task failure (messages from pipeline.data_validate.validate_quotes)."""
    if isinstance(exc, SchemaChangeError):
        return "schema_change"
    if isinstance(exc, DataError):
        text = str(exc)
        if text.startswith("null-rate spike"):
            return "null_rate_spike"
        if text.startswith("too many bad rows"):
            return "bad_rows_halt"
    return "task_failed"


def _date(value: Any) -> str | None:
    return None if value is None else str(value)


@_guarded
def task_failed(
    task: str, date: Any, exc: BaseException, cfg: Any, log_name: str | None = None
) -> threading.Thread | None:
    """runtime.execute's hook: a failed task-day → its alert (one per failure). `log_name`: the
    task log's stem when it differs from the task (model_eval, deployment)."""
    with _ALERTED_LOCK:
        if (task, _date(date)) in _ALERTED:
            _ALERTED.discard((task, _date(date)))
            return None  # the task already alerted with the specifics (e.g. deploy_rollback)
    logs = _get(_get(cfg, "paths", {}), "logs", "logs")
    stamp = str(date).replace("-", "") if date else "*"
    alert = Alert.of(
        kind_of(exc),
        task,
        date,
        f"{task} failed: {exc}"[:3000],
        error=type(exc).__name__,
        exit_code=getattr(exc, "exit_code", 1),
        log=str(Path(logs) / f"{log_name or task}_{stamp}.log"),
    )
    return send(alert, cfg)


@_guarded
def gate_verdict(ctx: Any, version: Any, verdict: Any) -> threading.Thread | None:
    """model_evaluate's hook: alert when the gate verdict failed (the candidate stays in Staging)."""
    if verdict.passed:
        return None
    return send(
        Alert.of(
            "failed_gate",
            ctx.task,
            ctx.date,
            f"candidate v{version} failed the gate: " + "; ".join(verdict.reasons)[:2500],
            version=str(version),
            reasons=list(verdict.reasons),
        ),
        ctx.cfg,
    )


@_guarded
def deploy_rollback(ctx: Any, incident: dict[str, Any], path: Any) -> threading.Thread | None:
    """model_deploy._incident's hook: the health check failed and the registry was rolled back
    (or could not be); the task then fails without a second alert."""
    restored = incident.get("after_rollback") or {}
    rollback = incident.get("rollback")
    if rollback is None:
        outcome = "no previous Production version to roll back to"
    else:
        outcome = f"rolled back to v{restored.get('version')}" + (
            "" if restored.get("passed") else " (which ALSO FAILS its health check)"
        )
    checks = incident.get("checks") or []
    alert = Alert.of(
        "deploy_rollback",
        ctx.task,
        ctx.date,
        f"v{incident.get('failed_version')} failed its deploy health check "
        f"({checks[-1] if checks else 'no checks'}); {outcome}",
        failed_version=incident.get("failed_version"),
        rolled_back_to=restored.get("version"),
        after_rollback_passed=restored.get("passed"),
        incident=str(path),
    )
    with _ALERTED_LOCK:
        _ALERTED.add((ctx.task, _date(ctx.date)))
    return send(alert, ctx.cfg)


@_guarded
def retrain_decision(ctx: Any, decision: Any) -> threading.Thread | None:
    """monitor's hook: alert when the decision is to retrain."""
    if not decision.retrain:
        return None
    retrain = bool(_get(ctx.task_cfg, "retrain", False))
    return send(
        Alert.of(
            "retrain_triggered",
            ctx.task,
            ctx.date,
            "retrain triggered: "
            + "; ".join(decision.reasons)[:2500]
            + ("" if retrain else " (monitor.retrain=false: nothing run)"),
            reasons=list(decision.reasons),
            retrain_runs=retrain,
        ),
        ctx.cfg,
    )


# paths.root of the service's alert files (default: the repo)
SERVING_ROOT_ENV = "SERVING_PATHS_ROOT"


def serving_alert(kind: str, message: str, details: dict[str, Any]) -> threading.Thread | None:
    """The pricing service's alert sink (configs/serving `alert_sink`): the project's config as
    this module reads it (alerts.log_path, webhook_url), rooted at $SERVING_PATHS_ROOT when set."""
    from hydra import compose, initialize_config_dir

    from pipeline.config import CONFIG_DIR, register_configs

    register_configs()
    root = os.environ.get(SERVING_ROOT_ENV)
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3", job_name="serving"):
        cfg = compose("config", overrides=[f"paths.root={root}"] if root else [])
    return send(Alert.of(kind, "serving", None, message, **details), cfg)

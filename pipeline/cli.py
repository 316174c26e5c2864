"""Command-line entry shared by every task: `python -m pipeline.<task> key=value ...`.

Hydra composes the config (typed by pipeline/config.py). Before handing over to Hydra, the
overrides are composed once on their own so that an unknown key or a bad value ends in a single
line naming it and exit code 2, instead of a traceback. PipelineErrors end with their exit code
(2 for config mistakes, 1 for data problems) and a one-line message.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Callable

import hydra
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf, open_dict

from pipeline.config import CONFIG_DIR, check_schema, register_configs
from pipeline.errors import PipelineError
from pipeline.runtime import LOG_FORMAT, configure_tracking


def configure_logging(console_level: int = logging.INFO) -> None:
    """Console logging for entry points; library modules only use getLogger(__name__).
    Task log files always get INFO (see runtime); `console_level` only filters the terminal."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, force=True)
    set_console_level(console_level)
    logging.getLogger("pipeline").setLevel(logging.INFO)
    for noisy in ("alembic", "mlflow", "urllib3", "git", "numexpr"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # MLflow's store migrations and pandera's optional-backend notices are not for users.
    warnings.filterwarnings("ignore", category=FutureWarning, module="mlflow")
    warnings.filterwarnings("ignore", message=".*pandas-only.*")


def set_console_level(level: int, keep: str | None = None) -> None:
    """Filter the terminal to `level`, except records from logger `keep` (and its children)."""

    def passes(record: logging.LogRecord) -> bool:
        return keep is not None and (record.name == keep or record.name.startswith(keep + "."))

    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(
            handler, logging.FileHandler
        ):
            handler.setLevel(logging.NOTSET)
            handler.filters.clear()
            handler.addFilter(lambda r: r.levelno >= level or passes(r))


def _one_line(exc: BaseException) -> str:
    parts = []
    for e in (exc, exc.__cause__):
        if e is None:
            continue
        text = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
        if text and text not in parts:
            parts.append(text)
    return "; ".join(parts) or type(exc).__name__


def _compose_checked(overrides: list[str]) -> None:
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3", job_name="check"):
        cfg = compose("config", overrides=overrides)
        check_schema(cfg)
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def check_overrides(argv: list[str]) -> str | None:
    """Compose the config with the user's overrides; return a one-line error, or None if fine."""
    overrides = [a for a in argv if not a.startswith(("hydra.", "hydra/", "+hydra", "~hydra"))]
    try:
        _compose_checked(overrides)
    except Exception as exc:  # noqa: BLE001 - any composition failure comes from the overrides
        culprit = _first_failing(overrides)
        prefix = f"override {culprit!r}: " if culprit else ""
        message = _one_line(exc)
        if "Unexpected type for root: NoneType" in message:  # OmegaConf's words for a null parent
            message = "its parent is not part of the chosen config (e.g. data_fetch.synthetic.* with data_fetch=cboe)"
        return prefix + message
    return None


def _first_failing(overrides: list[str]) -> str | None:
    """The first override whose addition breaks composition (names it when the error does not)."""
    for i in range(len(overrides)):
        try:
            _compose_checked(overrides[: i + 1])
        except Exception:  # noqa: BLE001
            return overrides[i]
    return None


def tracking_from_env(cfg: DictConfig, argv: list[str]) -> None:
    """An exported MLFLOW_TRACKING_URI (team mode) is the task's store unless the command line
    sets mlflow.tracking_uri. Read once here and written into the config as a fixed value: an
    `${oc.env:...}` in the YAML would be re-read on every access, and MLflow's set_tracking_uri
    rewrites the variable (a config composed for one store would follow the next one)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri and not any(a.lstrip("+").startswith("mlflow.tracking_uri=") for a in argv):
        with open_dict(cfg):
            cfg.mlflow.tracking_uri = uri


def run_cli(app: Callable[[DictConfig], object]) -> None:
    """Parse argv with Hydra and call `app(cfg)`, turning known failures into exit codes."""
    register_configs()
    argv = sys.argv[1:]
    flags = [a for a in argv if a.startswith("-")]
    if not flags:  # --help, --cfg, -m ... are Hydra's own business
        problem = check_overrides(argv)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            sys.exit(2)

    @hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
    def _main(cfg: DictConfig) -> None:
        configure_logging()
        try:
            tracking_from_env(cfg, argv)
            configure_tracking(cfg)
            app(cfg)
        except PipelineError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(exc.exit_code)

    _main()

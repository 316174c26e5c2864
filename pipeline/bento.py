"""make bento: a Bento of one pinned registry version, served with no registry and no repository.

`python -m pipeline.bento [registry.version=3]` (`make bento VERSION=3`; default: the version
holding `@production`):

1. checks the version as promote does (pipeline.deploy_checks.offline_check: loaded as the
   service loads it, it must price its logged input example); a version that fails is refused
   with one line `error: ...` (exit 1) and nothing is written;
2. imports it into BentoML's model store (`$BENTOML_HOME`, default ~/bentoml) as
   `options-pricer:<generated>`: the MLflow model folder (`mlflow_model/`) and the daily market
   states of `paths.state` (`states/`, the states the registry-following service would price
   with), described in the model's metadata (read by serving/bento_service.py);
3. builds the Bento `options_pricing:<generated>` around serving/bento_service.py: the source of
   the repository packages that service imports (found by importing it in a fresh process, so the
   Bento follows the code's layers), pinned requirements of the distributions it imports (for
   `bentoml containerize`), and the serving settings (configs/serving) as build arguments.
   If the build fails, the model imported in step 2 is deleted again.

Prints the Bento's tag and how to serve it: `bentoml serve <tag>` from any folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from omegaconf import DictConfig

from pipeline.config import REPO_ROOT
from pipeline.deploy_checks import offline_check
from pipeline.errors import ConfigError, PipelineError
from pipeline.model.packaging import quiet_artifact_transfers
from pipeline.registry import Registry, RegistryRefusal

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")  # no usage statistics from BentoML

SERVICE = "serving.bento_service:OptionsPricingBento"
# what the service imports (its worker too): the discovery of packages and distributions starts here
SERVICE_MODULES = ("serving.http_api", "serving.engine", "serving.model_holder", "mlflow.pyfunc")
MLFLOW_DIR, STATES_DIR = "mlflow_model", "states"  # inside the BentoML model
STATE_FILES = "market_state_*.json"
BUILD_OPTIONS = {
    "description": "options-pricer: one registry version priced over HTTP (POST /price); "
    "built by `make bento` (pipeline/bento.py)",
    "exclude": ["**/__pycache__/", "**/*.pyc"],
    "docker": {"python_version": "3.11", "distro": "debian"},
}  # the service itself turns off BentoML's and MLflow's usage statistics (serving/http_api.py)


class BentoRefusal(PipelineError):
    """The version may not become a Bento (it failed its self-check); nothing was written."""

    exit_code = 1


def main(cfg: DictConfig) -> str:
    """Check, import and build per cfg.registry (model_name, version); returns the Bento's tag."""
    name = cfg.registry.model_name
    version, run_id = pinned_version(Registry(name), cfg.registry.version)
    health = offline_check(f"models:/{name}/{version}", version, cfg.paths.state,
                           cfg.serving.max_state_age_days)  # fmt: skip
    if not health.passed:
        raise BentoRefusal(f"v{version} of '{name}' is not built into a Bento: "
                           f"{health.checks[-1]}. Nothing was built")  # fmt: skip
    import bentoml

    model = import_version(name, version, run_id, Path(cfg.paths.state))
    try:
        bento = build(cfg, str(model.tag), version)
    except BaseException:
        bentoml.models.delete(model.tag)
        raise
    meta = model.info.metadata
    print(f"bento {bento.tag}: {name} v{version} (BentoML model {model.tag}; {meta['states']} "
          f"daily market states, newest {meta['newest_state'] or 'none'})")  # fmt: skip
    print(f"next: bentoml serve {bento.tag} (from any folder; {cfg.serving.host}:{cfg.serving.port}) · "
          f"bentoml containerize {bento.tag} (needs Docker or another OCI builder)")  # fmt: skip
    return str(bento.tag)


def pinned_version(registry: Registry, wanted) -> tuple[str, str | None]:
    """(version, run_id): `wanted`, or the `@production` version; RegistryRefusal if none."""
    if wanted is not None and not str(wanted).isdigit():
        raise ConfigError(f"registry.version must be a version number, got {wanted!r}")
    rows = registry.state()
    if not rows:
        raise RegistryRefusal(f"no registered model '{registry.name}' in {registry.uri}: "
                              "nothing to build (make run trains one)")  # fmt: skip
    if wanted is None:
        held = [r for r in rows if "production" in r["aliases"]]
        if not held:
            raise RegistryRefusal(f"no version of '{registry.name}' is in Production: name one "
                                  "(make bento VERSION=N) or promote one (make promote)")  # fmt: skip
        return held[0]["version"], held[0]["run_id"]
    found = [r for r in rows if r["version"] == str(wanted)]
    if not found:
        versions = ", ".join(f"v{r['version']} ({r['stage']})" for r in rows)
        raise RegistryRefusal(f"v{wanted} of '{registry.name}' does not exist: its versions are "
                              f"{versions}")  # fmt: skip
    return found[0]["version"], found[0]["run_id"]


def import_version(name: str, version: str, run_id: str | None, state_dir: Path):
    """The registry version's MLflow model folder and the daily states, as a BentoML model."""
    import bentoml
    import mlflow

    states = sorted(state_dir.glob(STATE_FILES)) if state_dir.is_dir() else []
    newest = states[-1].stem.rsplit("_", 1)[-1] if states else None
    metadata = {"model_name": name, "registry_version": version, "run_id": run_id or "",
                "mlflow_model": MLFLOW_DIR, "state_dir": STATES_DIR, "states": len(states),
                "newest_state": newest}  # fmt: skip
    labels = {"registry_model": name, "registry_version": version}
    with bentoml.models.create(name, labels=labels, metadata=metadata) as model:
        with quiet_artifact_transfers():
            mlflow.artifacts.download_artifacts(f"models:/{name}/{version}",
                                                dst_path=model.path_of(MLFLOW_DIR))  # fmt: skip
        folder = Path(model.path_of(STATES_DIR))
        folder.mkdir()
        for path in states:
            shutil.copy2(path, folder / path.name)
    return model


def build(cfg: DictConfig, model_tag: str, version: str):
    """The Bento around serving/bento_service.py holding `model_tag` (see the module docstring)."""
    import bentoml

    packages, distributions = service_imports()
    distributions = pinned(distributions, model_requirements(model_tag))
    serving = cfg.serving
    args = {"model_tag": model_tag, "host": serving.host, "port": serving.port,
            "timeout_s": serving.timeout_s, "batch_max_contracts": serving.batch_max_contracts,
            "max_state_age_days": serving.max_state_age_days}  # fmt: skip
    return bentoml.bentos.build(
        SERVICE,
        **BUILD_OPTIONS,
        labels={"registry_model": cfg.registry.model_name, "registry_version": version},
        include=[f"{package}/**/*.py" for package in packages],
        python={"packages": distributions, "lock_packages": False},
        build_ctx=str(REPO_ROOT),
        args=args,
    )


def model_requirements(model_tag: str) -> list[str]:
    """The MLflow model's own requirements.txt (what its pyfunc code imports when loaded)."""
    import bentoml

    path = Path(bentoml.models.get(model_tag).path_of(MLFLOW_DIR)) / "requirements.txt"
    lines = path.read_text().splitlines() if path.is_file() else []
    return [line.strip() for line in lines if line.strip() and not line.startswith(("#", "-"))]


def pinned(found: list[str], required: list[str]) -> list[str]:
    """`found` (pins of this environment) plus the `required` lines naming other distributions."""

    def key(requirement: str) -> str:
        return re.split(r"[<>=!~ ;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")

    have = {key(r) for r in found}
    return sorted(found + [r for r in required if key(r) not in have], key=key)


def service_imports() -> tuple[list[str], list[str]]:
    """(repository packages, pinned distributions) that SERVICE_MODULES import, found in a fresh
    Python process started in the repository."""
    code = f"""
import importlib, importlib.metadata as md, json, pathlib, sys
for name in {list(SERVICE_MODULES)!r}:
    importlib.import_module(name)
root, tops = pathlib.Path.cwd().resolve(), set()
for name, module in list(sys.modules.items()):
    path = getattr(module, "__file__", None)
    path = pathlib.Path(path).resolve() if path else None
    if path and path.is_relative_to(root) and not path.relative_to(root).parts[0].startswith("."):
        tops.add(name.split(".")[0])  # a repository package (not the .venv's)
dists = md.packages_distributions()
used = {{d for top in {{n.split(".")[0] for n in sys.modules}} for d in dists.get(top, [])}}
pins = sorted(f"{{d}}=={{md.version(d)}}" for d in used if d.lower() != "bentoml")
print(json.dumps([sorted(tops), pins]))
"""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise PipelineError(f"could not import the Bento's service to list its files: {last}")
    packages, pins = json.loads(done.stdout.strip().splitlines()[-1])
    return packages, pins


if __name__ == "__main__":
    from pipeline.cli import run_cli

    run_cli(main)

"""promote: the manual gate, Staging → Production.

`python -m pipeline.promote [registry.version=3] [registry.force=true registry.reason='"hotfix: ..."']`
promotes the Staging candidate (or the given Staging version) when its gate verdict passed; force
needs a reason. Either way the version must first price its logged input example offline, loaded
as the pricing service loads it (pipeline.deploy_checks.offline_check): force overrides a failed
gate verdict, never a model that cannot price. Prints the history entry (from → to) and what to do
next. A refusal prints one line `error: ...` and exits 1, with nothing changed (pipeline.registry
holds the rules).
"""

from __future__ import annotations

from omegaconf import DictConfig

from pipeline.deploy_checks import promotion_check
from pipeline.registry import Registry
from pipeline.registry_rules import describe


def main(cfg: DictConfig) -> dict:
    """Promote per cfg.registry (model_name, version, force, reason); returns the history entry."""
    r = cfg.registry
    version = None if r.version is None else str(r.version)
    check = promotion_check(r.model_name, cfg.paths.state, cfg.serving.max_state_age_days)
    entry = Registry(r.model_name).promote(
        version=version, force=r.force, reason=r.reason, check=check
    )
    print(describe(entry))
    print(next_steps(r.model_name, entry))
    return entry


def next_steps(name: str, entry: dict) -> str:
    """What the user can do after a promotion (rollback only when a version was replaced)."""
    frm = entry["from_version"]
    steps = [f"serving resolves models:/{name}@production (now v{entry['to_version']})"]
    if frm:
        steps.append(f'back to v{frm}: make rollback REASON="..."')
    steps.append("audit: make history")
    return "next: " + " · ".join(steps)


if __name__ == "__main__":
    from pipeline.cli import run_cli

    run_cli(main)

"""rollback: restore the previous Production version.

`python -m pipeline.rollback registry.reason='"why"'` moves the version holding alias
`previous-production` back to Production and archives the current one. One rollback undoes one
promotion: afterwards `previous-production` is unset, so a second rollback is refused (it would
redeploy the version just rolled back). A refusal prints one line `error: ...` and exits 1.
"""

from __future__ import annotations

from omegaconf import DictConfig

from pipeline.registry import Registry
from pipeline.registry_rules import describe


def main(cfg: DictConfig) -> dict:
    """Roll back per cfg.registry (model_name, reason); returns the history entry."""
    r = cfg.registry
    entry = Registry(r.model_name).rollback(reason=r.reason)
    print(describe(entry))
    print(
        f"{r.model_name}@production is now v{entry['to_version']}; v{entry['from_version']} is Archived."
    )
    print(
        "next: check serving (it resolves @production) · train and promote a fixed candidate · make history"
    )
    return entry


if __name__ == "__main__":
    from pipeline.cli import run_cli

    run_cli(main)

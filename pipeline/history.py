"""history: the promotion history and the registry's current state, as plain-text tables.

`python -m pipeline.history` prints every register/promote/rollback entry (oldest first: when,
action, from → to, who, forced, why), then one row per version (stage, aliases, gate verdict, run,
created) and any stage/alias disagreement.
"""

from __future__ import annotations

from omegaconf import DictConfig

from pipeline.registry import Registry
from pipeline.registry_rules import disagreements


def table(rows: list[dict], columns: list[str]) -> str:
    """Rows (dicts) as a left-aligned text table with a header; None shows as '-'."""
    cells = [[("-" if r.get(c) is None else str(r[c])) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]

    def line(values: list[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, cells)])


def history_rows(entries: list[dict]) -> list[dict]:
    """History entries → table rows: #, at, action, from → to, user, forced, reason."""
    return [
        {
            "#": i,
            "at": e.get("at"),
            "action": e.get("action"),
            "from → to": f"{_v(e.get('from_version'))} → {_v(e.get('to_version'))}",
            "user": e.get("user"),
            "forced": "yes" if e.get("forced") else "",
            "reason": e.get("reason"),
        }
        for i, e in enumerate(entries, 1)
    ]


def state_rows(state: list[dict]) -> list[dict]:
    """Registry.state() rows → table rows (aliases joined)."""
    return [{**s, "aliases": ", ".join(s["aliases"]) or None} for s in state]


def _v(version) -> str:
    return f"v{version}" if version else "none"


def render(name: str, entries: list[dict], state: list[dict], problems: list[str]) -> str:
    """The whole report for model `name`."""
    parts = [f"Promotion history of '{name}' (oldest first)"]
    parts.append(
        table(history_rows(entries), ["#", "at", "action", "from → to", "user", "forced", "reason"])
        if entries
        else "(no entries)"
    )
    parts.append(f"\nCurrent state of '{name}'")
    parts.append(
        table(state_rows(state), ["version", "stage", "aliases", "verdict", "run_id", "created"])
        if state
        else "(no versions registered)"
    )
    if problems:
        parts.append("\nstage/alias disagreements:\n" + "\n".join(f"  - {p}" for p in problems))
    return "\n".join(parts)


def main(cfg: DictConfig) -> str:
    registry = Registry(cfg.registry.model_name)
    state = registry.state()
    text = render(registry.name, registry.history(), state, disagreements(state))
    print(text)
    return text


if __name__ == "__main__":
    from pipeline.cli import run_cli

    run_cli(main)

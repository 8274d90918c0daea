"""`kawa bandits show [NAME]`: each bandit's arms with pulls, rewards, mean reward and score."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from kawa.cli._common import console, fail, settings

bandits_app = typer.Typer(
    help="Bandits: arms chosen per request, rewarded from events.", no_args_is_help=True
)


@bandits_app.command("show")
def show(
    name: Annotated[str | None, typer.Argument(help="Bandit name (default: every bandit)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")] = False,
) -> None:
    """Show what the project's bandits have learned: per arm pulls, rewards, mean reward and score."""
    from kawa.bandits.service import BanditNotFound, BanditService
    from kawa.runtime import Runtime

    config = settings()
    runtime = Runtime(config)
    try:
        service = BanditService(runtime)
        overview = service.overview(config.project)
        if name is not None:
            try:
                overview["bandits"] = [service.show(config.project, name)]
            except BanditNotFound as exc:
                raise fail(str(exc)) from None
    finally:
        runtime.close()
    if as_json:
        console.print_json(json.dumps(overview))
        return
    if overview["error"]:
        console.print(f"[yellow]warning:[/yellow] {overview['error']}", highlight=False)
    if not overview["bandits"]:
        console.print(
            f"no bandits in {', '.join(config.code)} or bandits.yaml; declare one with kawa.bandits.Bandit "
            "(docs/bandits.md)",
            style="dim",
            highlight=False,
        )
        return
    for bandit in overview["bandits"]:
        _print(bandit)
    if not overview["worker"]["running"]:
        console.print("rewards are counted by `kawa serve`, which is not running here", style="dim")


def _print(bandit: dict[str, Any]) -> None:
    policy = dict(bandit["policy"])
    label = policy.pop("name")
    params = ", ".join(f"{k}={v:g}" for k, v in policy.items())
    # Names, arms, contexts and filters are the project's text: printed as written, never as markup.
    rewards = [f"an event with its decision_id matching {escape(json.dumps(bandit['reward_on']))}"]
    if bandit["purchase_on"] is not None:
        rewards.append(f"the user's next {escape(json.dumps(bandit['purchase_on']))}")
    console.print(
        f"\n[bold]{bandit['name']}[/bold]: {label}({params}), {bandit['pulls']:,} decisions, "
        f"{bandit['rewards']:,} rewards; a reward is {' or '.join(rewards)} "
        f"within {_duration(bandit['window_s'])}",
        highlight=False,
    )
    contexts = bandit["contexts"]
    table = Table(
        *(["context"] if contexts else []), "arm", "pulls", "rewards", "mean reward", bandit["score_name"]
    )
    sections = [("(all)", bandit["arms"])] + [(escape(c["context"]), c["arms"]) for c in contexts]
    for context, arms in sections:
        for arm in arms:
            name = escape(arm["arm"]) + ("" if arm["declared"] else " [dim](no longer declared)[/dim]")
            row = [
                name,
                f"{arm['pulls']:,}",
                f"{arm['rewards']:,}",
                _number(arm["mean_reward"]),
                _number(arm["score"]),
            ]
            table.add_row(*([context] if contexts else []), *row)
        if contexts:
            table.add_section()
    console.print(table)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def register(app: typer.Typer) -> None:
    app.add_typer(bandits_app, name="bandits")

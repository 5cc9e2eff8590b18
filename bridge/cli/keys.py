"""``indiebridge keys``: the actor's key pairs."""

from __future__ import annotations

from pathlib import Path

import click

from bridge.cli._common import friendly, load_config, site_option


@click.group("keys")
def keys_group() -> None:
    """The actor's key pairs."""


@keys_group.command("show")
@site_option
@friendly
def keys_show(site_dir: Path) -> None:
    """Print the public keys and their ids (never the private keys)."""
    from bridge import keys

    config = load_config(site_dir)
    actor_keys = keys.load(config.state_dir)
    click.echo(f"RSA key id:     {config.key_id}")
    click.echo(actor_keys.public_pem.rstrip())
    click.echo(f"Ed25519 key id: {config.ed25519_key_id}")
    click.echo(f"publicKeyMultibase: {actor_keys.ed25519_multibase}")


commands: list[click.Command] = [keys_group]

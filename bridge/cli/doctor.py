"""`indiebridge doctor`: the deployment check, a thin command over ``bridge.doctor``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import click

from bridge.cli._common import friendly, load_config, site_option


@click.command()
@click.argument("url", required=False)
@site_option
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@friendly
def doctor(url: str | None, site_dir: Path, as_json: bool) -> None:
    """Check the deployed blog at URL (default: base_url) the way Mastodon will.

    In a site's folder (or with --site) the expectations come from site.toml and the
    site's key signs one probe; given only a URL, they are read from the site itself.

    One line per check -- WebFinger, host-meta, the actor, inboxes, clock, the Host header
    the daemon sees, a sample post (content negotiation, alternate link, proofs), a deleted
    post (410 Gone), the Webmention endpoint, NodeInfo, the outbox, caching -- each ok,
    warning or failure, with the fix for each problem. Exit status: 0 all ok, 1 warnings,
    2 failures.
    """
    import asyncio
    import contextlib

    from bridge import doctor as doc
    from bridge import keys
    from bridge.errors import BridgeError
    from bridge.federation.signatures import HTTPSignatureAuth
    from bridge.site.gone import sample

    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/"):
            raise click.ClickException(
                f"{url}: expected the site's address, like https://blog.example"
            )
        url = f"{parts.scheme}://{parts.netloc}"
    if url is not None and not (site_dir / "site.toml").is_file():
        findings = asyncio.run(doc.run_url(url))  # someone else's site, or run elsewhere
    else:
        config = load_config(site_dir, base_url=url)
        url = config.base_url
        auth = None
        with contextlib.suppress(BridgeError, OSError):  # without keys: Host check skipped
            auth = HTTPSignatureAuth(keys.load(config.state_dir).rsa, config.key_id)
        gone: tuple[str, ...] = ()
        with contextlib.suppress(BridgeError, OSError):  # no state yet: nothing was deleted
            gone = sample(config)
        findings = asyncio.run(doc.run(doc.Expect.from_config(config, gone), auth))
    if as_json:
        click.echo(doc.as_json(url, findings))
    else:
        for finding in findings:
            click.echo(finding.line())
    raise SystemExit(doc.exit_status(findings))


commands: list[click.Command] = [doctor]

"""A local preview: the site built for the address it is served at, not for base_url.

Every URL in the built HTML, feeds and ActivityPub documents is absolute to ``base_url``
(fediverse servers and feed readers need absolute URLs), so a site built for
``https://blog.example`` shows no styles and no images when opened at
``http://127.0.0.1:8000``.  A preview therefore builds the site again with ``base_url``
(and the federation URL) set to the address it is served at, as ``hugo server`` rewrites
baseURL, into its own folder (``.indiebridge/preview/``, private state, never ``public/``):

* ``indiebridge build``'s output is unchanged;
* the actor and NodeInfo of a preview say that they are a preview, and a preview never
  federates: the preview server has no inbox, no delivery and no publishing.

The rule that picks the mode is :func:`mode`: a preview when the address the server listens
on is not ``base_url``'s host and port, production when it is; ``--preview`` and
``--production`` override it (a daemon behind a reverse proxy listens on loopback for a
public ``base_url`` and runs with ``--production``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from bridge.config import SiteConfig

Mode = Literal["preview", "production"]
PREVIEW_FOLDER = "preview"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def preview_dir(config: SiteConfig) -> Path:
    """Where a preview is built: inside the site's private state, beside the caches."""
    return config.state_dir / PREVIEW_FOLDER


def listen_url(host: str, port: int) -> str:
    """The address a server on ``host:port`` is reached at, as printed to the user."""
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else host  # noqa: S104 - only a label
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"  # an IPv6 address
    return f"http://{shown}:{port}"


def mode(config: SiteConfig, host: str, port: int) -> Mode:
    """Production when the server listens at base_url's own host and port, else preview."""
    parts = urlsplit(config.base_url)
    base_port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
    listen_host = host.strip("[]").lower()
    same_host = (parts.hostname or "").lower() == listen_host
    return "production" if same_host and base_port == port else "preview"


def preview_config(config: SiteConfig, url: str) -> SiteConfig:
    """``config`` as it is built for a preview served at ``url``.

    base_url and federation_url become ``url``; the author's URL and profile field values
    that pointed into the blog point into the preview; the output goes to the preview
    folder.  ``preview_of`` keeps the real base_url, for the notices in the documents.
    """
    url = url.rstrip("/")
    if config.preview_of:  # already a preview (a reload): rebase from the real address
        config = dataclasses.replace(config, base_url=config.preview_of, preview_of="")
    old = config.base_url

    def rebase(value: str) -> str:
        if value == old or value.startswith(old + "/"):
            return url + value[len(old) :]
        return value

    author = config.author
    author = dataclasses.replace(
        author,
        url=rebase(author.url),
        fields=tuple(dataclasses.replace(f, value=rebase(f.value)) for f in author.fields),
    )
    return dataclasses.replace(
        config,
        base_url=url,
        federation_url=url,  # the preview server answers (and refuses) the endpoints
        author=author,
        output_dir_name=(Path(config.state_dir.name) / PREVIEW_FOLDER).as_posix(),
        preview_of=old,
    )


def notice(config: SiteConfig) -> str:
    """One sentence that says a document is a preview, for its readers."""
    return f"A local preview of {config.preview_of}; it does not federate."

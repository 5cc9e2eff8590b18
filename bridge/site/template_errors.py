"""Template errors as one line naming the template file and line: never a traceback.

``site_template/templates/post.html:12: 'foo' is undefined`` for the default theme,
``templates/post.html:12: ...`` for a site's own override.  Jinja rewrites tracebacks so
that the frames of a template carry its file name and line (that is how Jinja reports a
runtime error's position), so the innermost frame inside a theme folder is the place.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Iterator
from pathlib import Path

import jinja2

from bridge import config as config_mod
from bridge.config import SiteConfig
from bridge.errors import BuildError

# Errors a template can raise at render time besides Jinja's own: a filter given the wrong
# kind of value, an attribute that is not there.
_RUNTIME = (jinja2.TemplateError, TypeError, ValueError, AttributeError, KeyError, IndexError)


def shown_path(path: str, config: SiteConfig) -> str:
    """A template's path as the user knows it: relative to the site, or to the theme."""
    file = Path(path)
    for root in (config.site_dir, config_mod.DEFAULT_THEME.parent):
        with contextlib.suppress(ValueError, OSError):
            return file.resolve().relative_to(root.resolve()).as_posix()
    return path


def describe(exc: BaseException, config: SiteConfig, name: str) -> str | None:
    """``file:line: message`` for an error raised while rendering template ``name``;
    None when the error did not come from a template (a bug to surface as it is)."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        where = shown_path(exc.filename or exc.name or name, config)
        return f"{where}:{exc.lineno}: {exc.message}"
    if isinstance(exc, jinja2.TemplateNotFound):
        place = _template_frame(exc, config)
        missing = f"template '{exc.name}' not found in {_folders(config)}"
        return f"{place}: {missing}" if place else missing
    place = _template_frame(exc, config)
    if place is None:
        return None
    message = exc.message if isinstance(exc, jinja2.TemplateError) else f"{exc}"
    return " ".join(f"{place}: {message}".split())


def _template_frame(exc: BaseException, config: SiteConfig) -> str | None:
    roots = [str(folder.resolve()) for folder in config.theme_dirs]
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if any(frame.filename.startswith(root) for root in roots):
            return f"{shown_path(frame.filename, config)}:{frame.lineno}"
    return None


def _folders(config: SiteConfig) -> str:
    return " or ".join(shown_path(str(folder), config) for folder in config.theme_dirs)


@contextlib.contextmanager
def reported(config: SiteConfig, name: str) -> Iterator[None]:
    """Turn an error inside a template into a one-line ``BuildError``."""
    try:
        yield
    except _RUNTIME as exc:
        text = describe(exc, config, name)
        if text is None:
            raise
        raise BuildError(text) from None

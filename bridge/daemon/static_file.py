"""A built file served whole as it was when opened, while rebuilds replace it.

Starlette's ``FileResponse`` takes the file's size (``Content-Length``) from a ``stat`` of
the path and reads the body from a later ``open`` of the same path.  A rebuild replaces a
page by renaming a new file over it, so between the two a reader could get the new page's
bytes under the old page's length: the server then broke the response off ("peer closed
connection without sending complete message body"), which a test polling a page while
the daemon rebuilt it caught.  Here the length, the validators and the body all come from
one open file.  Files larger than ``WHOLE_LIMIT`` (media a site serves) keep
``FileResponse``, which streams them and answers ``Range`` requests; the build copies
those and rarely replaces them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from email.utils import formatdate
from pathlib import Path

import anyio.to_thread
from starlette.responses import FileResponse, Response

WHOLE_LIMIT = 16 << 20
"""Bytes up to which a file is read whole from one open (every page, feed and document)."""


def _read(path: Path) -> tuple[bytes, os.stat_result] | os.stat_result:
    with open(path, "rb") as fh:
        st = os.fstat(fh.fileno())
        if st.st_size > WHOLE_LIMIT:
            return st
        return fh.read(), st


async def file_response(
    path: Path,
    *,
    media_type: str,
    headers: Mapping[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    """The file at ``path`` (it must exist: a caller checked) as one consistent response.

    Raises:
        OSError: the file could not be opened (gone since the caller's check).
    """
    read = await anyio.to_thread.run_sync(_read, path)
    if isinstance(read, os.stat_result):
        return FileResponse(path, status_code=status_code, media_type=media_type, headers=headers)
    body, st = read
    out = dict(headers or {})
    out["last-modified"] = formatdate(st.st_mtime, usegmt=True)
    out["etag"] = f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
    return Response(body, status_code=status_code, media_type=media_type, headers=out)

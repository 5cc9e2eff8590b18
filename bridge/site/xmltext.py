"""XML character data and attribute values, as ``xml.sax.saxutils`` writes them.

The same two functions, byte for byte (``tests/site/test_xmltext.py`` compares them on
hostile strings), without importing ``xml.sax.saxutils``: that module imports
``urllib.request``, and with it ``http.client``, ``email`` and ``ssl``, about 20 ms of a
build that needs none of them.
"""

from __future__ import annotations

_ATTR_ENTITIES = (("\n", "&#10;"), ("\r", "&#13;"), ("\t", "&#9;"))


def escape(data: str) -> str:
    """``&``, ``<`` and ``>`` as entities (``xml.sax.saxutils.escape``)."""
    return data.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")


def quoteattr(data: str) -> str:
    """An attribute value with its quotes (``xml.sax.saxutils.quoteattr``): escaped,
    newlines and tabs as character references, quoted with ``"`` unless it holds ``"``
    and no ``'``."""
    data = escape(data)
    for char, entity in _ATTR_ENTITIES:
        data = data.replace(char, entity)
    if '"' in data:
        if "'" in data:
            return '"{}"'.format(data.replace('"', "&quot;"))
        return f"'{data}'"
    return f'"{data}"'

"""The exception tree of indiebridge.

Every error a user can cause by their own files or settings is a ``BridgeError`` whose
message is one line naming the file, key or URL and what was expected.  The command line
prints that line and exits non-zero; it never shows a traceback for these.

::

    BridgeError
    ├── ConfigError          site.toml is missing, unreadable or holds a wrong key/value
    ├── ContentError         a post or page cannot be parsed ("content/posts/x.md:3: ...")
    ├── BuildError           the output could not be written (disk full, path escape)
    ├── FeedError            an import source is not a feed, export or site folder it can
    │                        read, or an imported file cannot be written
    ├── KeyFileError         the actor's key files are missing or unreadable
    ├── SignatureError       an HTTP signature or integrity proof does not verify
    ├── PublishError         publish/move refused: a built document is missing, an activity
    │                        id is queued with other content, a Move target lacks alsoKnownAs
    ├── FetchError           a remote URL could not be fetched safely
    │   ├── BlockedAddressError   the URL resolves to a private/loopback address
    │   └── SourceRetryLater      a webmention source failed transiently: verify it later
    ├── SourceTooComplex     a webmention source shaped to make the parser slow (HTML bomb)
    ├── ModerationError      the owner named an unknown comment, or one that cannot take the action
    ├── InteractionError     a reader's handle cannot be used to follow/reply/like from their server
    └── DeliveryError        a delivery attempt failed
        ├── RetryableDelivery     5xx, 429, 408, 401, timeouts, resets: try again later
        └── PermanentDelivery     other 4xx: give up now
            └── InboxGone         410: the inbox no longer exists

"Retryable" versus "permanent" is a difference of type, so callers catch by family.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error indiebridge raises on purpose."""


class ConfigError(BridgeError):
    """site.toml is missing, malformed, or a key is missing or of the wrong type."""


class ContentError(BridgeError):
    """A content file is broken; the message starts with ``path:line:``."""

    def __init__(self, path: str, line: int, message: str) -> None:
        self.path = path
        self.line = line
        self.message = message
        super().__init__(f"{path}:{line}: {message}")


class BuildError(BridgeError):
    """The site could not be written; the previous output is left untouched."""


class FeedError(BridgeError):
    """An import source cannot be read, or an imported file cannot be written."""


class KeyFileError(BridgeError):
    """The actor's key files are missing or unreadable."""


class SignatureError(BridgeError):
    """An HTTP signature or an object integrity proof does not verify.

    ``status`` is the HTTP status the inbox answers with (401 by default, 400 for a
    malformed header).
    """

    def __init__(self, message: str, status: int = 401) -> None:
        self.status = status
        super().__init__(message)


class PublishError(BridgeError):
    """``publish`` or ``move`` refused to queue something; nothing was half-queued."""


class FetchError(BridgeError):
    """A remote document could not be fetched (network, status, size, type)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class BlockedAddressError(FetchError):
    """The URL (or a redirect hop) resolves to a loopback, private or link-local address."""


class SourceRetryLater(FetchError):
    """A webmention source failed transiently (timeout, connection error, 5xx, 408, 429):
    its verification is tried again on the retry schedule."""


class SourceTooComplex(BridgeError):
    """A webmention source shaped to make the parser slow (an "HTML bomb"): refused."""


class ModerationError(BridgeError):
    """The owner named a comment that does not exist or cannot take that action."""


class DeliveryError(BridgeError):
    """A delivery attempt failed."""

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(message)


class RetryableDelivery(DeliveryError):
    """Timeouts, resets, 5xx, 408, 429 and 401: the job is retried with backoff."""


class PermanentDelivery(DeliveryError):
    """Any other 4xx: the job is given up at once (410 also removes the follower)."""


class InboxGone(PermanentDelivery):
    """410 Gone: the inbox (its account, or for a shared inbox its server) no longer exists."""


class InteractionError(BridgeError):
    """A reader's handle or server cannot be used for a remote interaction (the message
    is shown to the reader in the page)."""

"""What one build did: ``BuildResult`` (its own module so that ``build_stamp``, whose
result is one, and ``build`` both import it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bridge.site.posts import Post


@dataclass
class BuildResult:
    out_dir: Path
    posts: int
    pages: int
    files: int
    written: int
    rendered: int
    seconds: float
    changed: list[str] = field(default_factory=list)
    built_posts: tuple[Post, ...] = ()  # the posts as parsed, newest first (for publish)
    warnings: list[str] = field(default_factory=list)  # one line each, e.g. a missing image

    def summary(self) -> str:
        return (
            f"Built {self.posts} posts, {self.pages} pages: {self.files} files "
            f"({self.written} changed) in {self.seconds:.2f}s -> {self.out_dir}"
        )

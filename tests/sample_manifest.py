"""The sample blog's built output as a digest manifest: one ``sha256  path`` line per file.

The build is deterministic (Ed25519 proofs are deterministic, and nothing reads the clock),
so the sample built with the fixed test keys in ``tests/data/sample-keys`` always gives the
same bytes. ``tests/test_sample_output.py`` compares a fresh build against the committed
manifest: a change that alters any output file shows up as a named file, on purpose.

After an intended change to the output, write the manifest anew and review the diff::

    python -m tests.sample_manifest --write
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "tests" / "data" / "sample-output.sha256"
SAMPLE_KEYS = REPO / "tests" / "data" / "sample-keys"
SAMPLE_PARTS = ("site.toml", "content", "static")


def build_sample(workdir: Path) -> Path:
    """Copy the sample blog with the fixed keys into ``workdir``, build it, return the output."""
    from bridge import config as config_mod
    from bridge.site.build import build

    site = workdir / "site"
    site.mkdir()
    for part in SAMPLE_PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, site / part, ignore=shutil.ignore_patterns("comments"))
        else:
            shutil.copy2(source, site / part)
    keys_dir = site / config_mod.STATE_DIR / "keys"
    keys_dir.mkdir(parents=True)
    for key in SAMPLE_KEYS.iterdir():
        shutil.copy(key, keys_dir / key.name)
        (keys_dir / key.name).chmod(0o600)
    config = config_mod.load(site)
    build(config)
    return config.output_dir


def manifest(output: Path) -> str:
    lines = []
    for path in sorted(p for p in output.rglob("*") if p.is_file()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"{digest}  {path.relative_to(output).as_posix()}")
    return "\n".join(lines) + "\n"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        text = manifest(build_sample(Path(tmp)))
    if "--write" in sys.argv:
        MANIFEST.write_text(text, encoding="utf-8")
        print(f"wrote {MANIFEST.relative_to(REPO)} ({text.count(chr(10))} files)")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()

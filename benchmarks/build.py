"""Build: indiebridge, Pelican and Hugo on the same generated corpus, one after the other.

For each N: a cold full build (no output, no caches) of each generator with its wall time
and peak RSS; then, for indiebridge, a rebuild after editing one post and a rebuild after
changing one template (tag.html: only tag pages may be rendered again).  Every build is a
separate process started the way a user starts it (``indiebridge build``,
``pelican content``, ``hugo``), so interpreter start-up and imports are included.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import sys
from pathlib import Path

from benchmarks import common, corpus

# One build in a child process that reports what it rendered (the CLI prints only the
# number of files written); the wall time is still that of the whole process.
IN_PROCESS = (
    "import json,sys,time;t=time.perf_counter();"
    "from bridge import config,keys;from bridge.site.build import build;"
    "c=config.load('.');keys.load_or_generate(c.state_dir);"
    "r=build(c);"
    "print(json.dumps({'rendered':r.rendered,'written':r.written,'files':r.files,"
    "'build_s':r.seconds,'process_s':time.perf_counter()-t}))"
)


def _env(src: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if src is not None:  # run another checkout's bridge package (the baseline)
        env["PYTHONPATH"] = str(src)
    return env


def _indiebridge(site: Path, src: Path | None) -> list[str]:
    if src is None and common.have("indiebridge"):
        return ["indiebridge", "build"]
    return [sys.executable, "-m", "bridge", "build"]


def _check(run: common.Run, what: str) -> common.Run:
    if run.returncode != 0:
        raise RuntimeError(f"{what} failed ({run.returncode}):\n{run.stderr[-3000:]}")
    return run


def _cpu_measured(args: list[str], **kwargs: object) -> tuple[common.Run, float, str]:
    """``common.measured`` and the CPU time it took (user + system of the command and of
    every process it waited for: a build's forked workers, Hugo's threads).  Other work on
    the machine moves wall times far more than CPU times."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run = common.measured(args, **kwargs)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    return run, user + system, f"user {common.seconds(user)} + sys {common.seconds(system)}"


def _report(run: common.Run) -> dict[str, float]:
    return dict(json.loads(run.stdout.strip().splitlines()[-1]))


def run(
    table: common.Table,
    n: int,
    peers: bool = True,
    src: Path | None = None,
    label: str = "indiebridge",
) -> dict[str, float]:
    """Measure N posts; returns the figures by name (for ratios between runs)."""
    root = common.WORK / f"build-{n}"
    items = list(corpus.posts(n))
    figures: dict[str, float] = {}
    site = corpus.write_indiebridge(root / "indiebridge", items)
    env = _env(src)

    cold, cold_cpu, cold_split = _cpu_measured(_indiebridge(site, src), cwd=site, env=env)
    _check(cold, "indiebridge build")
    figures["cold"] = cold.seconds
    figures["cold_cpu"] = cold_cpu
    table.add(
        "build",
        f"N={n} {label}: cold full build",
        common.seconds(cold.seconds),
        cold.stdout.strip().splitlines()[-1].split(" in ")[0] if cold.stdout else "",
    )
    table.add("build", f"N={n} {label}: cold build CPU", common.seconds(cold_cpu), cold_split)
    table.add("build", f"N={n} {label}: cold build peak RSS", common.mb(cold.peak_rss_mb))
    figures["cold_rss"] = cold.peak_rss_mb
    files = re.search(r"(\d+) files", cold.stdout)
    if files:  # the CLI's summary line: "Built N posts, M pages: F files (...)"
        figures["files_per_post"] = int(files.group(1)) / n
        table.add(
            "build",
            f"N={n} {label}: files written per post",
            f"{figures['files_per_post']:.1f}",
            "every file of the site / N",
        )

    probe = [sys.executable, "-c", IN_PROCESS]
    _check(common.run(probe, cwd=site, env=env), "no-op rebuild")  # settle the cache
    noop = _check(common.run(probe, cwd=site, env=env), "no-op rebuild")
    figures["noop"] = noop.seconds
    table.add(
        "build",
        f"N={n} {label}: rebuild, nothing changed",
        common.seconds(noop.seconds),
        f"in build() {common.seconds(_report(noop)['build_s'])}",
    )

    corpus.edit_post(site / "content" / "posts" / f"{items[n // 2].slug}.md", 1)
    touch = _check(common.measured(probe, cwd=site, env=env), "rebuild after an edit")
    rep = _report(touch)
    figures["touch"] = touch.seconds
    table.add(
        "build",
        f"N={n} {label}: rebuild after editing one post",
        common.seconds(touch.seconds),
        f"in build() {common.seconds(rep['build_s'])}; rendered {rep['rendered']:.0f}, "
        f"written {rep['written']:.0f}",
    )

    templates = site / "templates"
    templates.mkdir(exist_ok=True)
    theme = common.ROOT / "site_template" / "templates" / "tag.html"
    (templates / "tag.html").write_text(
        theme.read_text(encoding="utf-8").replace("Posts tagged", "Posts with the tag"),
        encoding="utf-8",
    )
    tpl = _check(common.measured(probe, cwd=site, env=env), "rebuild after a template change")
    rep = _report(tpl)
    tag_pages = sum(1 for _ in (site / "public" / "tags").iterdir())
    figures["template"] = tpl.seconds
    figures["template_rendered"] = rep["rendered"]
    table.add(
        "build",
        f"N={n} {label}: rebuild after changing tag.html",
        common.seconds(tpl.seconds),
        f"rendered {rep['rendered']:.0f} pages ({tag_pages} tag pages use it)",
    )
    if not peers:
        return figures

    pelican_site = corpus.write_pelican(root / "pelican", items)
    if common.have("pelican"):
        out = pelican_site / "output"
        shutil.rmtree(out, ignore_errors=True)
        pel, pel_cpu, pel_split = _cpu_measured(
            ["pelican", "content", "-s", "pelicanconf.py", "-o", "output", "-q"],
            cwd=pelican_site,
        )
        _check(pel, "pelican")
        figures["pelican"] = pel.seconds
        figures["pelican_cpu"] = pel_cpu
        table.add("build", f"N={n} Pelican: cold full build", common.seconds(pel.seconds))
        table.add("build", f"N={n} Pelican: cold build CPU", common.seconds(pel_cpu), pel_split)
        table.add("build", f"N={n} Pelican: peak RSS", common.mb(pel.peak_rss_mb))
    else:
        table.add("build", f"N={n} Pelican", "skipped", "not installed (benchmarks/setup.sh)")
    hugo_site = corpus.write_hugo(root / "hugo", items)
    if common.have("hugo"):
        shutil.rmtree(hugo_site / "public", ignore_errors=True)
        shutil.rmtree(hugo_site / "resources", ignore_errors=True)
        hugo, hugo_cpu, hugo_split = _cpu_measured(
            ["hugo", "--quiet", "-d", "public"], cwd=hugo_site
        )
        _check(hugo, "hugo")
        figures["hugo"] = hugo.seconds
        table.add("build", f"N={n} Hugo: cold full build", common.seconds(hugo.seconds))
        table.add("build", f"N={n} Hugo: cold build CPU", common.seconds(hugo_cpu), hugo_split)
        table.add("build", f"N={n} Hugo: peak RSS", common.mb(hugo.peak_rss_mb))
    else:
        table.add("build", f"N={n} Hugo", "skipped", "not installed (benchmarks/setup.sh)")
    if "pelican" in figures:
        table.add(
            "build",
            f"N={n} cold: indiebridge / Pelican",
            common.ratio(figures["cold"], figures["pelican"]),
            "target <= 0.33x",
        )
        table.add(
            "build",
            f"N={n} cold CPU: indiebridge / Pelican",
            common.ratio(figures["cold_cpu"], figures["pelican_cpu"]),
            "Pelican uses one core, indiebridge every core",
        )
    if "hugo" in figures:
        table.add(
            "build",
            f"N={n} cold: indiebridge / Hugo",
            common.ratio(figures["cold"], figures["hugo"]),
            "stretch <= 1x",
        )
        table.add(
            "build",
            f"N={n} one-post rebuild / Hugo full build",
            common.ratio(figures["touch"], figures["hugo"]),
            "target <= 0.2x",
        )
    return figures

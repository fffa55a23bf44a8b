"""The documentation site builds with ``--strict`` and shows what it should.

The built site loads nothing from the network (mermaid is bundled); stage pages have their
included code, each exercise beside the walkthrough code of its function with the answer
folded, and a summary of ``CHANGES.diff`` that links the diff.  The build also fails, as it
should, on a missing snippet file or section and on a broken stage placeholder.  How the pages
look in a real browser is ``test_site_in_browser.py``.  The API reference page documents every
name in ``miniray.__all__``, with the type of every argument in its signature.
"""

from __future__ import annotations

import ast
import html as htmllib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tools.page_exercises import exercise_index, place_exercises
from tools.stages import REPO_ROOT, Exercise, Stage, find_stage, list_stages
from tools.stubs import find_definition

HOOK = REPO_ROOT / "docs_hooks" / "miniray_docs.py"


def mkdocs_build(config: Path, site_dir: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` from the repository root (snippet paths are relative to it)."""
    command = ["build", "--strict", "--config-file", str(config), "--site-dir", str(site_dir)]
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", *command],
        cwd=REPO_ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site_dir = tmp_path_factory.mktemp("site")
    done = mkdocs_build(REPO_ROOT / "mkdocs.yml", site_dir)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return site_dir


def test_mkdocs_build_strict_passes(site: Path) -> None:
    assert (site / "index.html").is_file()
    assert (site / "stages" / "01_local_worker" / "index.html").is_file()


def test_the_site_loads_nothing_from_the_network(site: Path) -> None:
    mermaid = site / "assets" / "javascripts" / "mermaid.min.js"
    assert mermaid.stat().st_size > 1_000_000, "the bundled mermaid is missing or truncated"
    external = re.compile(r"<(?:script|link)\b[^>]*\b(?:src|href)=\"(?:https?:)?//[^\"]*\"[^>]*>")
    for html in site.rglob("*.html"):
        text = html.read_text(encoding="utf-8")
        tags = [t for t in external.findall(text) if "<link" not in t or "stylesheet" in t]
        assert not tags, f"{html.relative_to(site)} loads from the network: {tags}"
        if html.name == "index.html":
            assert "assets/javascripts/mermaid.min.js" in text, html


def visible_text(html: str) -> str:
    """The text of an HTML page as a reader sees it: tags removed, entities decoded."""
    return htmllib.unescape(re.sub(r"<[^>]*>", "", html))


def test_stage_pages_have_their_code_and_exercises(site: Path) -> None:
    html = (site / "stages" / "01_local_worker" / "index.html").read_text(encoding="utf-8")
    assert "<!-- exercises -->" not in html and "<!-- changed-files -->" not in html
    assert 'class="mermaid"' in html
    text = visible_text(html)
    assert "--8<--" not in text, "a snippet line was not replaced"
    assert "def take_frame(buffer" in text and "def die_with_parent(" in text
    for exercise in find_stage("01_local_worker").exercises:
        assert f"Exercise {exercise.id} — {exercise.title}" in text
        assert f"make exercise EX={exercise.id}" in text


def body_fingerprint(stage: Stage, exercise: Exercise) -> str:
    """The longest line of the solution's body (docstring left out): the answer itself."""
    text = (stage.path / exercise.file).read_text(encoding="utf-8")
    func = find_definition(ast.parse(text), exercise.qualname)
    body = func.body[1:] if isinstance(func.body[0], ast.Expr) else func.body
    lines = text.splitlines()[body[0].lineno - 1 : body[-1].end_lineno]
    return max((line.strip() for line in lines), key=len)


ANSWER_RE = re.compile(r'<details class="success">.*?</details>', re.DOTALL)


def test_each_exercise_sits_beside_its_code_with_the_answer_collapsed(site: Path) -> None:
    for stage in list_stages():
        html = (site / "stages" / stage.name / "index.html").read_text(encoding="utf-8")
        answers = ANSWER_RE.findall(html)
        assert len(answers) >= len(stage.exercises), stage.name  # more: quoted twice
        outside = visible_text(ANSWER_RE.sub("", html))
        index = html.index('<h2 id="exercises"')  # the list at the end of the page
        for exercise in stage.exercises:
            fingerprint = body_fingerprint(stage, exercise)
            assert fingerprint in visible_text(html), (exercise.id, fingerprint)
            assert fingerprint not in outside, f"exercise {exercise.id}: answer shown open"
            anchor = f"exercise-{exercise.id.replace('.', '-')}"
            assert html.index(f'id="{anchor}"') < index, (
                f"exercise {exercise.id} is not in the walkthrough: quote the snippet section "
                f"that holds {exercise.target} where the page explains it"
            )
            box = outside.index(f"Exercise {exercise.id} — {exercise.title}")
            assert "raise NotImplementedError" in outside[box : box + 3000]
            assert f'href="#{anchor}"' in html  # from the index at the end


HINT_RE = re.compile(r'<details class="tip">.*?</details>', re.DOTALL)


def test_each_exercise_has_its_statement_shown_and_its_hint_folded(site: Path) -> None:
    for stage in list_stages():
        html = (site / "stages" / stage.name / "index.html").read_text(encoding="utf-8")
        hints = HINT_RE.findall(html)
        assert len(hints) == len(stage.exercises), stage.name
        outside = " ".join(visible_text(ANSWER_RE.sub("", HINT_RE.sub("", html))).split())
        for exercise in stage.exercises:
            hint = next(h for h in hints if f"make hint EX={exercise.id}<" in h)
            words = " ".join(exercise.hint.replace("`", "").split())
            assert words in " ".join(visible_text(hint).split()), exercise.id
            assert words not in outside, f"exercise {exercise.id}: its hint is shown open"
            statement = " ".join(exercise.statement.replace("`", "").split())
            assert statement in outside, f"exercise {exercise.id}: no statement on the page"


def test_an_exercise_its_page_does_not_quote_still_has_its_answer_folded() -> None:
    stage = find_stage("01_local_worker")
    markdown, unplaced = place_exercises("# A page that quotes nothing\n", stage)
    assert markdown == "# A page that quotes nothing\n"
    assert unplaced == list(stage.exercises)
    index = exercise_index(stage, unplaced[:1])
    first = stage.exercises[0]
    assert f'<span id="exercise-{first.id.replace(".", "-")}"></span>' in index
    assert '??? success "The stage\'s code"' in index
    assert index.count("??? success") == 1


def test_the_diff_is_summarised_and_linked_not_inlined(site: Path) -> None:
    for stage in list_stages():
        page = site / "stages" / stage.name / "index.html"
        html = page.read_text(encoding="utf-8")
        assert "diff --git" not in html, f"{stage.name}: the diff is inlined"
        links = re.findall(r'href="([^"]*\.diff)"', html)
        assert links, f"{stage.name}: no link to the diff"
        target = (page.parent / links[0]).resolve()
        assert target.read_bytes() == (stage.path / "CHANGES.diff").read_bytes()


BROKEN_SITES = {
    "good include": ('```python\n--8<-- "{stage}/miniray/wire.py:format"\n```\n', None),
    "missing section": (
        '```python\n--8<-- "{stage}/miniray/channel.py:no_such_section"\n```\n',
        "could not be located",
    ),
    "missing file": ('```python\n--8<-- "{stage}/miniray/no_such_file.py"\n```\n', "could not be"),
    "placeholder without stage": ("<!-- exercises -->\n", "front matter"),
    "unknown stage": ("---\nstage: 99_nothing\n---\n<!-- exercises -->\n", "99_nothing"),
}


@pytest.mark.parametrize("case", BROKEN_SITES)
def test_the_build_fails_on_broken_includes_and_placeholders(case: str, tmp_path: Path) -> None:
    body, expected_error = BROKEN_SITES[case]
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text(body.format(stage="stages/01_local_worker"), encoding="utf-8")
    config = tmp_path / "mkdocs.yml"
    config.write_text(
        f"INHERIT: {REPO_ROOT / 'mkdocs.yml'}\n"
        f"docs_dir: {docs}\n"
        f"hooks: [{HOOK}]\n"
        "watch: []\n"
        "nav: [index.md]\n",
        encoding="utf-8",
    )
    done = mkdocs_build(config, tmp_path / "site")
    output = done.stdout + done.stderr
    if expected_error is None:
        assert done.returncode == 0, output
    else:
        assert done.returncode != 0, f"the build passed despite: {case}"
        assert expected_error in output, output


# --- the API reference page (docs/reference.md, rendered by mkdocstrings) -------------------------

OBJECT_HEADING_RE = re.compile(
    r'<h3 id="(miniray\.[\w.]+)" class="doc doc-heading">\s*'
    r'<span class="doc doc-object-name doc-(\w+)-name">(\w+)</span>'
)
SIGNATURE_RE = re.compile(r'<div class="doc-signature highlight"><pre>(.*?)</pre></div>', re.DOTALL)


def public_names() -> list[str]:
    """``miniray.__all__``, read from the source the page is generated from."""
    tree = ast.parse((REPO_ROOT / "miniray" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "__all__":
            names: list[str] = ast.literal_eval(node.value)
            return names
    raise AssertionError("miniray/__init__.py has no __all__")


def documented_objects(html: str) -> set[str]:
    """The names of the page's top-level entries (classes and functions, not modules)."""
    return {
        name
        for anchor, kind, name in OBJECT_HEADING_RE.findall(html)
        if kind != "module" and anchor.rsplit(".", 1)[1] == name
    }


def unannotated_parameters(signature: str) -> list[str]:
    """The parameters of a rendered signature (``name(a: int, *, b: str = "x") -> T``)
    that show no type; ``self`` and ``cls`` need none."""
    function = ast.parse(f"def {signature}: ...").body[0]
    assert isinstance(function, ast.FunctionDef)
    args = function.args
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    return [a.arg for a in every if a and a.annotation is None and a.arg not in ("self", "cls")]


def test_the_reference_documents_every_public_name(site: Path) -> None:
    html = (site / "reference" / "index.html").read_text(encoding="utf-8")
    missing = sorted(set(public_names()) - documented_objects(html))
    assert not missing, f"docs/reference.md does not document: {missing}"
    text = visible_text(html)
    assert "--8<--" not in text and "Traceback (most recent call last)" not in text
    assert not re.search(r":(?:class|meth|attr|func):", text), "a Sphinx role shows raw"


def test_the_reference_shows_the_type_of_every_argument(site: Path) -> None:
    html = (site / "reference" / "index.html").read_text(encoding="utf-8")
    signatures = [visible_text(block).strip() for block in SIGNATURE_RE.findall(html)]
    calls = [s for s in signatures if re.match(r"\w+\(", s)]
    assert len(calls) >= len(public_names()), "fewer signatures than public names"
    for signature in calls:
        assert not unannotated_parameters(signature), f"an argument without its type: {signature}"
    text = " ".join(" ".join(signatures).split())  # one line: the page wraps long signatures
    for expected in (
        "Worker( work_fn: WorkFn, *, env: Mapping[str, str] | None = None, max_frame: int",
        "RemoteWorker( host: str, port: int, *, secret: str | bytes | None = None",
        "start(work_fn: str) -> list[ClusterWorker]",
        "NodeConfig( host: str, num_workers: int = 1, base_port: int | None = None",
        "submit( name: str, /, *args: Any, **kwargs: Any ) -> Future[Any]",
    ):
        assert expected in text, expected


def test_a_signature_without_a_type_is_caught() -> None:
    assert unannotated_parameters("f(self, a: int, b, *args, c: str = 'x', **kw) -> None") == [
        "b",
        "args",
        "kw",
    ]
    assert unannotated_parameters("Worker(work_fn: WorkFn, *, env: Mapping[str, str] | None)") == []

"""The README and docs/ stay true: the two commands, links that resolve, figures from their results files (fast)."""

import importlib.util
import re
from dataclasses import fields

from advisor.config import PROJECT_ROOT, Settings

README = PROJECT_ROOT / "README.md"
DOCS = PROJECT_ROOT / "docs"


def pages():
    return [README, *sorted(DOCS.glob("*.md"))]


def test_the_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    text = README.read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", text, re.DOTALL)
    before_prose = text.split("\n## ")[0]
    assert before_prose.count("```bash") == 2 and before_prose.index("```bash") < 300
    app, tests = blocks[:2]
    assert app.endswith("python app.py") and "pip install -r requirements.txt" in app
    assert tests.endswith("python -m pytest") and tests in (PROJECT_ROOT / ".ci" / "run").read_text()
    assert len(text) < 8_000  # a five-minute read: the rest belongs in docs/


def test_every_relative_link_resolves():
    for page in pages():
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)|src=\"([^\"]+)\"", page.read_text()):
            target = next(t for t in target if t)
            if re.match(r"[a-z]+:", target):
                continue
            assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"


def test_figures_in_the_docs_are_their_results_files():
    spec = importlib.util.spec_from_file_location("include", PROJECT_ROOT / "bench" / "include.py")
    include = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(include)
    assert include.refresh(DOCS, check=True) == [], "run `python bench/include.py` after writing docs/results/"
    names = {m for page in pages() for m in re.findall(r"<!-- include results/([\w.-]+\.md) -->", page.read_text())}
    assert {"bench-answers.md", "bench-faiss.md", "bench-stores.md", "quality-seeds.md", "quality-careers.md"} <= names


def test_every_setting_is_documented():
    text = "\n".join(page.read_text() for page in pages())
    missing = [f.metadata["env"] for f in fields(Settings) if f.metadata["env"] not in text]
    assert not missing, f"settings missing from the docs: {missing}"

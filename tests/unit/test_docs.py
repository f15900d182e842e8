"""The documentation holds together: README.md stays short, and every relative link in it and in
docs/*.md reaches a file of the repository and, with a #anchor, a heading of that file."""

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 250

FENCE = re.compile(r"^ {0,3}(```|~~~)")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
CODE_SPAN = re.compile(r"(`+).+?\1")
# [text](target) or [text](target "title"); images too. Targets with spaces are not used here.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, ...


def prose_lines(path):
    """The file's lines outside fenced code blocks, with inline code spans removed."""
    fenced, lines = False, []
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(CODE_SPAN.sub("", line))
    return lines


def slug(heading):
    """GitHub's anchor for a heading: markup dropped, lowercased, every character but letters, digits,
    underscores, hyphens and spaces removed, spaces turned into hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path):
    """Every anchor of the file's headings, with GitHub's -1, -2 ... for repeated ones."""
    seen, found = {}, set()
    fenced = False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        heading = None if fenced else HEADING.match(line)
        if heading:
            base = slug(heading.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path):
    return [
        (number, target)
        for number, line in enumerate(prose_lines(path), 1)
        for target in LINK.findall(line)
        if not EXTERNAL.match(target)
    ]


def test_the_readme_is_at_most_250_lines():
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines, over {README_MAX_LINES}: move detail into docs/"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_reaches_a_file_and_a_heading(doc):
    broken = []
    for _, target in links(doc):
        file_part, _, anchor = target.partition("#")
        destination = (doc.parent / unquote(file_part)).resolve() if file_part else doc
        if not destination.is_relative_to(ROOT):
            broken.append(f"{target}: outside the repository")
        elif not destination.exists():
            broken.append(f"{target}: no such file {destination.relative_to(ROOT)}")
        elif anchor and destination.suffix == ".md" and unquote(anchor).lower() not in anchors(destination):
            broken.append(f"{target}: no heading with the anchor #{anchor} in {destination.relative_to(ROOT)}")
    assert not broken, f"{doc.relative_to(ROOT)}: broken links:\n" + "\n".join(broken)


def test_the_slugs_follow_githubs_rules():
    assert slug("Tests: what is verified where") == "tests-what-is-verified-where"
    assert slug("The edge, and Docker against UFW") == "the-edge-and-docker-against-ufw"
    assert slug("Scale-out: worker and replica hosts") == "scale-out-worker-and-replica-hosts"
    assert slug("Measured: `make docker-bench`") == "measured-make-docker-bench"
    assert slug("cluster (`platform_deploy/cluster.py`)") == "cluster-platform_deployclusterpy"

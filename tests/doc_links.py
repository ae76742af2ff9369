#!/usr/bin/env python3
"""doc_links.py ROOT — the documents' cross-references resolve.

Every relative link in README.md, docs/*.md, bench/*.md and python/README.md
names a file that exists and, with a #anchor into a Markdown file, one of
its headings (GitHub's anchor rule: lower case, punctuation dropped, spaces
to hyphens).  Every citation of the form  FILE.md, "Section"  in the code,
scripts and documents names a heading (or a bold lead-in) of that file.
Prints each broken reference and exits 1 if there is one."""
import glob
import os
import re
import sys

SOURCE_DIRS = ["include", "runtime", "kernels", "tools", "tests", "python", "bench", "docs"]
SOURCE_EXT = (".c", ".h", ".cu", ".py", ".sh", ".md", ".cmake", ".txt", ".toml")


def anchor(heading):
    h = re.sub(r"[`*]", "", heading.strip().lower())
    h = re.sub(r"[^\w\- ]", "", h)
    return h.replace(" ", "-")


def headings(path):
    out, fence = [], False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("```"):
                fence = not fence
            elif not fence and re.match(r"#{1,6} ", line):
                out.append(line.lstrip("#").strip())
    return out


def check_links(doc):
    problems = []
    with open(doc, encoding="utf-8") as f:
        text = re.sub(r"```.*?```", "", f.read(), flags=re.S)
    for m in re.finditer(r"\]\(([^)\s]+)\)", text):
        link = m.group(1)
        if re.match(r"[a-z]+:", link):
            continue
        path, _, frag = link.partition("#")
        target = os.path.normpath(os.path.join(os.path.dirname(doc), path)) if path else doc
        if not os.path.exists(target):
            problems.append(f"{doc}: link {link}: no such file")
        elif frag and target.endswith(".md") and frag not in {anchor(h) for h in headings(target)}:
            problems.append(f"{doc}: link {link}: no heading with that anchor")
    return problems


def sources():
    yield from (f for f in ("README.md", "CMakeLists.txt") if os.path.isfile(f))
    for top in SOURCE_DIRS:
        for d, subdirs, files in os.walk(top):
            subdirs[:] = [s for s in subdirs if s != "runs" and not s.startswith(".")]
            for name in files:
                path = os.path.join(d, name)
                if name.endswith(SOURCE_EXT) and path != os.path.join("tests", "doc_links.py"):
                    yield path


def check_citations(path):
    problems = []
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        return problems
    # FILE.md, "Section" — the section may wrap onto a comment's next line.
    for m in re.finditer(r'([\w./-]+\.md|README),\s*(?:\n\s*[*#]?\s*)?"([^"]+)"', text):
        doc = "README.md" if m.group(1) == "README" else m.group(1)
        section = re.sub(r"\s*\n\s*[*#]?\s*", " ", m.group(2))
        target = next((c for c in (doc, os.path.join(os.path.dirname(path), doc))
                       if os.path.isfile(c)), None)
        if target is None:
            problems.append(f'{path}: cites {doc}, "{section}": no such file')
            continue
        with open(target, encoding="utf-8") as f:
            bold = re.findall(r"\*\*([^*]+)\*\*", f.read())
        names = [h.strip("`") for h in headings(target)] + bold
        if not any(n.startswith(section) for n in names):
            problems.append(f'{path}: cites {doc}, "{section}": no such section')
    return problems


def main():
    os.chdir(sys.argv[1] if len(sys.argv) > 1 else ".")
    docs = ["README.md"] + sorted(glob.glob("docs/*.md")) + sorted(glob.glob("bench/*.md"))
    docs += [p for p in ["python/README.md"] if os.path.isfile(p)]
    problems = [p for d in docs for p in check_links(d)]
    problems += [p for s in sources() for p in check_citations(s)]
    for p in problems:
        print(p)
    print(f"doc_links: {len(problems)} broken reference(s) in {len(docs)} documents and the sources")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

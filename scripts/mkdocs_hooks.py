"""mkdocs hooks (``mkdocs.yml``: ``hooks:``): pages generated from the source at build time, never copied by hand.

- ``reference/hooks.md``: the hook reference, rendered from ``edgeopt/plugin/hookspecs.py`` docstrings by the same
  generator that keeps ``docs/writing-a-plugin.md`` current (``edgeopt.testing.gen_docs.render_hooks``);
- ``changelog.md``: the repository's ``CHANGELOG.md``.

``mkdocs build --strict`` (run by ``tests/test_docs_site.py``) fails on any broken link or missing page.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]


def _hooks_page() -> str:
    from edgeopt.plugin import hookspecs
    from edgeopt.testing.gen_docs import END, START, render_hooks

    body = render_hooks().replace(START, "").replace(END, "").strip()
    return (f"# Hook reference\n\nEvery hook a plugin may implement (hook API {hookspecs.HOOK_API_VERSION}), "
            "generated from the docstrings of `edgeopt/plugin/hookspecs.py` when the site is built. How to write a "
            "plugin: [Writing a plugin](../writing-a-plugin.md).\n\n" + body + "\n")


def on_files(files: Files, config) -> Files:  # noqa: ANN001 - mkdocs' MkDocsConfig
    files.append(File.generated(config, "reference/hooks.md", content=_hooks_page()))
    files.append(File.generated(config, "changelog.md", content=(ROOT / "CHANGELOG.md").read_text()))
    return files

"""Sphinx extension of the toyticket website (loaded through `local_extensions` in _config.yml).

- Keeps pages offline: every script and stylesheet a page loads must be served by the site.
  A page that would load one from another host is a build warning (an error under -W), so a
  configuration change that brings back a CDN fails the build, not only the browser test.
- Drops sphinx-thebe's page scripts: the book has no live-kernel button, and sphinx-thebe 0.3.1
  declared `const THEBE_JS_URL` twice on every page (a console error) and pointed at unpkg.
- API reference (book/api.md): a docstring that is valid reStructuredText is rendered as such;
  any other is shown as written, as preformatted text. The package's docstrings are mostly
  plain text, and read as RST some produce warnings (errors under -W) whenever someone writes
  `|x|` or an indented list, which would let a docstring edit break the build.
"""

from sphinx.util import logging

logger = logging.getLogger(__name__)

_THEBE_HANDLERS = {"init_thebe_core", "init_thebe_default_config", "update_thebe_context"}


def _drop_thebe(app, config):
    for event, listeners in app.events.listeners.items():
        keep = [
            listener
            for listener in listeners
            if not (
                getattr(listener.handler, "__module__", "").startswith("sphinx_thebe")
                and listener.handler.__name__ in _THEBE_HANDLERS
            )
        ]
        app.events.listeners[event] = keep


def _is_remote(url: str) -> bool:
    return url.startswith(("http://", "https://", "//"))


def _check_offline(app, pagename, templatename, context, doctree):
    for key in ("script_files", "css_files"):
        for asset in context.get(key, []):
            url = str(getattr(asset, "filename", asset) or "")
            if _is_remote(url):
                logger.warning(
                    "page %s loads %s from the network; the website must serve it itself "
                    "(see the offline assets in tools/book.py)",
                    pagename,
                    url,
                    type="toyticket",
                    subtype="offline",
                )


def _clean_rst(text: str) -> bool:
    """Whether plain docutils parses `text` without a warning (unknown roles count)."""
    import io

    from docutils import nodes
    from docutils.core import publish_doctree

    settings = {
        "report_level": 2,  # keep warnings and errors as nodes in the tree
        "halt_level": 5,
        "warning_stream": io.StringIO(),
        "file_insertion_enabled": False,
        "raw_enabled": False,
    }
    try:
        document = publish_doctree(text, settings_overrides=settings)
    except Exception:  # noqa: BLE001 - anything docutils cannot take is shown as text
        return False
    if any(True for _ in document.findall(nodes.problematic)):
        return False
    return not any(m["level"] >= 2 for m in document.findall(nodes.system_message))


def _docstring_as_text(app, what, name, obj, options, lines):
    text = [line.rstrip() for line in lines]
    while text and not text[-1]:
        text.pop()
    if not text or _clean_rst("\n".join(text)):
        return
    lines[:] = ["::", ""] + [f"    {line}" if line else "" for line in text] + [""]


def setup(app):
    app.connect("autodoc-process-docstring", _docstring_as_text)
    app.connect("config-inited", _drop_thebe, priority=900)
    app.connect("html-page-context", _check_offline, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

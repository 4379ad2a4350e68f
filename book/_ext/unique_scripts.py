"""Drop repeated inline <script> blocks from pages.

sphinx-thebe 0.3 (always loaded by Jupyter Book) registers its configuration script once per
read phase, and a build can have two; the browser then fails on the second
``const THEBE_JS_URL`` declaration. Keeping the first copy of each script fixes the page.
"""

from __future__ import annotations


def _unique_scripts(app, pagename, templatename, context, doctree):
    seen = set()
    unique = []
    for script in context.get("script_files", []):
        # the same inline script may be registered with filename None and with ""
        filename = getattr(script, "filename", script) or ""
        key = (filename, getattr(script, "attributes", {}).get("body"))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _unique_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

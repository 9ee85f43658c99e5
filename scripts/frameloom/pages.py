"""HTML pages from the package's jinja2 templates (``frameloom/templates/``): the report and the
review page. Their styles and scripts are files of their own there, inlined when a page is
rendered (a page opened from disk loads nothing beside it)."""

from __future__ import annotations

import functools
import json
from importlib.resources import files

import jinja2
from markupsafe import Markup

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("frameloom", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


@functools.cache
def template_text(name: str) -> Markup:
    """A style sheet or script of the templates folder, as trusted markup."""
    return Markup(files("frameloom").joinpath("templates", name).read_text(encoding="utf-8"))


def inline_json(data) -> Markup:
    """``data`` as JSON for a ``<script type="application/json">`` element ("</" would end it early)."""
    return Markup(json.dumps(data, ensure_ascii=False).replace("</", "<\\/"))


def render_page(template: str, **context) -> str:
    return _ENVIRONMENT.get_template(template).render(**context)

"""Sphinx configuration: Markdown pages through MyST, the Python API through
autodoc, and no asset from a CDN, so the docs build offline."""

import os
import sys
from pathlib import Path

import django
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# autodoc imports the models, so Django must be set up. A project's settings
# module wins when one is given; otherwise a minimal in-memory configuration.
if "DJANGO_SETTINGS_MODULE" not in os.environ and not settings.configured:
    settings.configure(
        INSTALLED_APPS=["django_bgjobs"],
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
        },
        USE_TZ=True,
    )
django.setup()

import django_bgjobs  # noqa: E402  (needs django.setup() first)

project = "django-bgjobs"
author = "the django-bgjobs contributors"
copyright = "the django-bgjobs contributors"
release = django_bgjobs.__version__
version = release

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "signature"

html_theme = "alabaster"
html_title = f"django-bgjobs {release}"


def setup(app):
    # Mermaid blocks stay plain text in HTML (no JavaScript from a CDN);
    # GitHub and other Markdown viewers still draw them.
    from pygments.lexers.special import TextLexer

    app.add_lexer("mermaid", TextLexer)

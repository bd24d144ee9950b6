"""The site's repository, launch and issue buttons: only when they lead somewhere.

One setting names the course's public repository: ``repository.url`` in ``_config.yml``
(Sphinx's ``html_theme_options["repository_url"]``).

- While it is empty, the build leaves out the launch (Binder, Colab), repository and issue
  buttons; every notebook page keeps its ``.ipynb`` download, which sphinx-book-theme would
  otherwise only copy into ``_sources/`` together with the launch buttons.
- Once it is set, it must be a GitHub repository ``https://github.com/<owner>/<repo>`` (Colab
  opens notebooks from GitHub only) and not a placeholder. The repository and issue buttons
  are switched on, Binder opens ``book/<page>.ipynb`` (``.binder/postBuild`` writes it from
  the MyST source) and Colab opens the executed download ``_sources/<page>.ipynb`` from the
  branch that serves the site (``course_pages_branch``, default ``gh-pages``: what
  ``ghp-import`` pushes).

``tests/test_site_links.py`` builds the book both ways.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sphinx.errors import ConfigError

LAUNCH_PROVIDERS = ("binderhub_url", "jupyterhub_url", "colab_url", "deepnote_url",
                    "jupyterlite_url")

PLACEHOLDER_HOSTS = re.compile(r"(^|\.)(example\.(org|com|net)|localhost)$", re.I)
PLACEHOLDER_REPOSITORIES = {"backprop-course/backprop-course", "owner/repo", "org/repo",
                            "user/repo", "executablebooks/jupyter-book"}
"""Repositories that stand for "fill this in": Jupyter Book's default among them."""

GITHUB = re.compile(r"^https://github\.com/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?$")


def is_placeholder(url: str) -> bool:
    """Whether ``url`` points into an example domain or at a placeholder repository."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if PLACEHOLDER_HOSTS.search(host):
        return True
    path = "/" + parts.path.strip("/").lower().removesuffix(".git") + "/"
    query = parts.query.lower()
    return any(f"/{repo}/" in path or repo in query for repo in PLACEHOLDER_REPOSITORIES)


def repository(url: str | None) -> tuple[str, str] | None:
    """(owner, repo) of the configured repository, or None while it is unset.

    Raises
    ------
    sphinx.errors.ConfigError
        If the URL is a placeholder or not a GitHub repository.
    """
    url = (url or "").strip()
    if not url:
        return None
    match = GITHUB.match(url)
    if not match:
        raise ConfigError(f"repository.url in _config.yml must be a GitHub repository, "
                          f"https://github.com/<owner>/<repository>; got {url!r}")
    if is_placeholder(url):
        raise ConfigError(f"repository.url in _config.yml is a placeholder ({url!r}): set it "
                          f"to the course's public repository or leave it empty")
    return match.group(1), match.group(2)


def configure_buttons(app: Any, config: Any) -> None:
    """config-inited: switch the buttons on or off from ``repository_url``."""
    options = config.html_theme_options
    launch = dict(options.get("launch_buttons") or {})
    for key in LAUNCH_PROVIDERS:
        if launch.get(key) and is_placeholder(launch[key]):
            raise ConfigError(f"launch_buttons.{key} in _config.yml is a placeholder "
                              f"({launch[key]!r}): remove it or name a real service")
    repo = repository(options.get("repository_url"))
    app.course_repository = repo
    if repo is None:
        options.pop("repository_url", None)
        for button in ("use_repository_button", "use_issues_button", "use_edit_page_button"):
            options[button] = False
        options["launch_buttons"] = {k: v for k, v in launch.items()
                                     if k not in LAUNCH_PROVIDERS}
    else:
        options["repository_url"] = f"https://github.com/{repo[0]}/{repo[1]}"
        options["use_repository_button"] = True
        options["use_issues_button"] = True


def _is_md_notebook(app: Any, pagename: str, context: dict[str, Any]) -> bool:
    metadata = app.env.metadata.get(pagename, {})
    return "kernelspec" in metadata and str(context.get("sourcename", "")).endswith(
        (".md", ".md.txt"))


def keep_notebook_download(app: Any, pagename: str, templatename: str,
                           context: dict[str, Any], doctree: Any) -> None:
    """html-page-context, before the theme: with no launch buttons, still offer the .ipynb."""
    if getattr(app, "course_repository", None) is not None or doctree is None:
        return
    if not _is_md_notebook(app, pagename, context):
        return
    executed = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    if not executed.is_file():
        return
    target = Path(app.outdir, "_sources", f"{pagename}.ipynb")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(executed, target)
    context["ipynb_source"] = f"{pagename}.ipynb"


def launch_urls(app: Any, pagename: str) -> dict[str, str]:
    """The Binder and Colab addresses of a chapter, for the configured repository."""
    owner, repo = app.course_repository
    options = app.config.html_theme_options
    launch = options.get("launch_buttons") or {}
    branch = options.get("repository_branch") or "main"
    book = (options.get("path_to_docs") or "").strip("/")
    prefix = f"{book}/" if book else ""
    urls = {}
    if launch.get("binderhub_url"):
        ui = "lab/tree" if launch.get("notebook_interface") == "jupyterlab" else "tree"
        urls["Binder"] = (f"{launch['binderhub_url'].rstrip('/')}/v2/gh/{owner}/{repo}/{branch}"
                          f"?urlpath={ui}/{prefix}{pagename}.ipynb")
    if launch.get("colab_url"):
        urls["Colab"] = (f"{launch['colab_url'].rstrip('/')}/github/{owner}/{repo}/blob/"
                         f"{app.config.course_pages_branch}/_sources/{pagename}.ipynb")
    return urls


def _walk_buttons(buttons: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for button in buttons:
        found.append(button)
        found.extend(_walk_buttons(button.get("buttons", [])))
    return found


def fix_launch_urls(app: Any, pagename: str, templatename: str,
                    context: dict[str, Any], doctree: Any) -> None:
    """html-page-context, after the theme: Binder and Colab open a notebook, not a .md."""
    if getattr(app, "course_repository", None) is None:
        return
    urls = launch_urls(app, pagename)
    for button in _walk_buttons(context.get("header_buttons", [])):
        if button.get("text") in urls and button.get("type") == "link":
            button["url"] = urls[button["text"]]


def setup(app: Any) -> dict[str, Any]:
    app.add_config_value("course_pages_branch", "gh-pages", "html")
    app.connect("config-inited", configure_buttons, priority=400)
    app.connect("html-page-context", keep_notebook_download, priority=500)
    app.connect("html-page-context", fix_launch_urls, priority=502)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

"""Data Docs that work offline: GX's pages load Bootstrap, jQuery, bootstrap-table, Font Awesome and
Vega from CDNs, so on a machine without internet they render unstyled and the validation list (a
bootstrap-table filled by script) stays empty. After each build, the files those links name are copied
from `infra/data_docs_assets/node_modules` (the same versions, installed by `make venv` with npm) into
the site's `static/vendor/`, and every page links to them relatively.

GX renders "Data asset: None" for dataframe batches (it reads the name from a batch spec those
batches lack); the page gets the asset name GX recorded in the validation result's own metadata.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

LOGGER = logging.getLogger(__name__)

# CDN address in GX's templates -> file under node_modules (package@version pinned in package.json).
CDN_FILES = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap/dist/css/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap/dist/js/bootstrap.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/dist/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.js/dist/umd/popper.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css":
        "@fortawesome/fontawesome-free/css/all.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker/dist/css/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker/dist/js/bootstrap-datepicker.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "bootstrap-table/dist/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "bootstrap-table/dist/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table/dist/extensions/filter-control/bootstrap-table-filter-control.min.js",
    # GX links the 1.19.0 styles of the extension beside the 1.19.1 script; 1.19.1's styles serve both.
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table/dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        "bootstrap-table/dist/extensions/filter-control/bootstrap-table-filter-control.css",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
        "@forevolve/bootstrap-dark/dist/css/bootstrap-prefers-dark.css",
    "https://cdn.jsdelivr.net/npm/vega@5": "vega/build/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite/build/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed/build/vega-embed.min.js",
}  # fmt: skip
# Folders a copied stylesheet reaches relatively (Font Awesome's ../webfonts/).
EXTRA_FOLDERS = ("@fortawesome/fontawesome-free/webfonts",)
GX_LOGO = re.compile(r"https://great-expectations-web-assets\.s3\.[^\"']*/logo-long\.png[^\"']*")
LINK = re.compile(r"(?P<attr>src|href)=\"(?P<url>https://[^\"]+)\"")
VENDOR = Path("static") / "vendor"


def assets_dir() -> Path:
    """$MURA_DATA_DOCS_ASSETS (the Airflow image sets it), else infra/data_docs_assets/node_modules."""
    import os

    from mura_core.settings import get_settings

    configured = os.environ.get("MURA_DATA_DOCS_ASSETS")
    if configured:
        return Path(configured)
    return get_settings().repo_root / "infra" / "data_docs_assets" / "node_modules"


def _copy_assets(site: Path, modules: Path) -> None:
    for relative in [*CDN_FILES.values(), *EXTRA_FOLDERS]:
        source, target = modules / relative, site / VENDOR / relative
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)


def _relative(page: Path, site: Path, target: Path) -> str:
    depth = len(page.relative_to(site).parts) - 1
    return "/".join([".."] * depth + list(target.parts)) if depth else "./" + target.as_posix()


def _asset_name(page: Path, site: Path) -> str | None:
    """The data asset GX recorded for a validation page (validations/<suite>/<run>/<time>/<batch>.html)."""
    relative = page.relative_to(site)
    if relative.parts[0] != "validations":
        return None
    result = site.parents[1] / "validations" / Path(*relative.parts[1:]).with_suffix(".json")
    if not result.is_file():
        return None
    definition = (
        json.loads(result.read_text(encoding="utf-8")).get("meta", {}).get("active_batch_definition", {})
    )
    name = definition.get("data_asset_name")
    return f"{definition.get('datasource_name')}.{name}" if name else None


def localize(site: Path, modules: Path | None = None) -> int:
    """Point every page of the Data Docs `site` at local copies; the number of pages rewritten.

    Without the npm assets (`make venv` installs them) the pages keep their CDN links and a warning
    says how to get them.
    """
    modules = modules or assets_dir()
    if not all((modules / relative).exists() for relative in CDN_FILES.values()):
        LOGGER.warning(
            "Data Docs keep their CDN links (unstyled offline): %s lacks the assets; run "
            "`npm ci --prefix infra/data_docs_assets` (make venv does)",
            modules,
        )
        return 0
    _copy_assets(site, modules)
    changed = 0
    for page in site.rglob("*.html"):
        text = original = page.read_text(encoding="utf-8")

        def local(match: re.Match, page: Path = page) -> str:
            relative = CDN_FILES.get(match["url"])
            if relative is None:
                return match[0]
            return f'{match["attr"]}="{_relative(page, site, VENDOR / relative)}"'

        text = LINK.sub(local, text)
        text = GX_LOGO.sub(_relative(page, site, Path("static/images/logo-long.png")), text)
        asset = _asset_name(page, site)
        if asset:
            text = text.replace("Data asset: None", f"Data asset: {asset}")
        if text != original:
            page.write_text(text, encoding="utf-8")
            changed += 1
    return changed

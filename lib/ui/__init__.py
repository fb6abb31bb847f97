"""The console in a browser: everything Streamlit, above the services in lib.console.

Pages call these (`from lib import ui`) and the services; they never open a database
session, sign a request or decrypt anything.

- frame: the app's pages (the one place for page paths), navigation, sidebar, links, and
  how a store or vault failure becomes a message.
- session: one browser session's console, the demo switch, flash messages, the cached fleet.
- presentation: status labels, colours, tiles, the fleet table, the heartbeat, untrusted text.
- bind_form, lifecycle, check_report, key_form: the parts of the pages that act on keys.
"""

from lib.ui.frame import (
    ACCOUNT_PAGE,
    BIND_PAGE,
    FLEET_PAGE,
    PAGES,
    SETTINGS_PAGE,
    failure_text,
    guarded,
    page,
    page_link,
    run,
    serve_page,
    switch_page,
)
from lib.ui.presentation import (
    STATUSES,
    alert,
    fleet_view,
    format_age,
    heartbeat_html,
    literal,
    permission_grid,
    plural,
    scope_name,
    show_diagnosis,
    status_badge,
    status_colour,
    status_label,
    tile_label,
)
from lib.ui.session import (
    DEMO_FLAG,
    FLEET_TTL_S,
    SELECTED_ACCOUNT,
    cached_fleet,
    console,
    demo_banner,
    empty_fleet,
    flash,
    show_flash,
)

__all__ = [
    "ACCOUNT_PAGE",
    "BIND_PAGE",
    "DEMO_FLAG",
    "FLEET_PAGE",
    "FLEET_TTL_S",
    "PAGES",
    "SELECTED_ACCOUNT",
    "SETTINGS_PAGE",
    "STATUSES",
    "alert",
    "cached_fleet",
    "console",
    "demo_banner",
    "empty_fleet",
    "failure_text",
    "flash",
    "fleet_view",
    "format_age",
    "guarded",
    "heartbeat_html",
    "literal",
    "page",
    "page_link",
    "permission_grid",
    "plural",
    "run",
    "scope_name",
    "serve_page",
    "show_diagnosis",
    "show_flash",
    "status_badge",
    "status_colour",
    "status_label",
    "switch_page",
    "tile_label",
]

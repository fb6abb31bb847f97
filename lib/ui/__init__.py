"""The console in a browser: everything Streamlit, above the services in lib.console.

Pages call these (`from lib import ui`) and the services; they never open a database
session, sign a request or decrypt anything.

- frame: the app's pages (the one place for page paths), navigation, sidebar, links, and
  how a store or vault failure becomes a message.
- session: one browser session's console, the demo switch, flash messages, the cached fleet.
- presentation: status labels, colours, tiles, the fleet table, the heartbeat, untrusted text.
- sign_in: who is at the browser (cookie, single sign-on), the setup and sign-in pages.
- bind_form, import_form, lifecycle, check_report, key_form, account_view, operators_form:
  the parts of the pages.
- watch_panel: the watcher's heartbeat on the Fleet page, and its auto-refresh.
- alerts_view: Settings' alerts, an account's alert history and drift, the Fleet's feed and chart.
"""

from lib.ui.frame import (
    ACCOUNT_PAGE,
    BIND_PAGE,
    FLEET_PAGE,
    IMPORT_PAGE,
    OPERATORS_PAGE,
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
    fleet_rows_view,
    fleet_view,
    fleet_view_columns,
    literal,
    plural,
    scope_name,
    show_diagnosis,
    status_badge,
    tile_label,
)
from lib.ui.session import (
    FLEET_TTL_S,
    SELECTED_ACCOUNT,
    cached_fleet,
    console,
    demo_banner,
    empty_fleet,
    flash,
    show_flash,
)
from lib.ui.sign_in import still_signed_in
from lib.ui.watch_panel import watcher_panel

# What the pages use; the rest is imported from the module that owns it.
__all__ = [
    "ACCOUNT_PAGE",
    "BIND_PAGE",
    "FLEET_PAGE",
    "FLEET_TTL_S",
    "IMPORT_PAGE",
    "OPERATORS_PAGE",
    "SELECTED_ACCOUNT",
    "SETTINGS_PAGE",
    "cached_fleet",
    "console",
    "demo_banner",
    "empty_fleet",
    "failure_text",
    "flash",
    "fleet_rows_view",
    "fleet_view",
    "fleet_view_columns",
    "guarded",
    "literal",
    "page",
    "page_link",
    "plural",
    "run",
    "scope_name",
    "serve_page",
    "show_diagnosis",
    "show_flash",
    "status_badge",
    "still_signed_in",
    "switch_page",
    "tile_label",
    "watcher_panel",
]

"""Fleet: every bound account at a glance, worst first, each with what to do next."""

from datetime import UTC, datetime

import streamlit as st

from lib import ui
from lib.console import errors
from lib.console.checks import refresh_fleet, refreshable_count
from lib.console.export import fleet_csv
from lib.console.fleet import FAILING, FleetSnapshot, filter_fleet, is_failing, refresh_summary
from lib.ui import alerts_view

SCOPE_OPTIONS = {"spot": "Spot", "futures": "Futures", "margin": "Margin"}
KIND_OPTIONS = {"all": "All accounts", "master": "Master accounts", "sub-account": "Sub-accounts"}
# Each filter widget's key and the value that shows every account.
FILTER_DEFAULTS = {
    "fleet_status": [],
    "fleet_scopes": [],
    "fleet_kind": "all",
    "fleet_search": "",
}
ROW_HEIGHT = 66  # three lines: taller than 4rem lets the grid wrap the diagnosis and the fix


def main() -> None:
    """Draw the Fleet page."""

    ui.demo_banner()
    st.title("Fleet")
    ui.show_flash()
    console = ui.console()
    if ui.cached_fleet(console).fleet.empty:
        ui.empty_fleet()
        st.stop()

    def refresh_all() -> None:
        """Check every non-paused account now with a progress bar; the table below is then fresh."""
        total = refreshable_count(console)
        if not total:
            st.info("Every account is paused: resume one to check it.")
            return
        bar = st.progress(0, text=f"Checking {total} accounts with KuCoin…")
        checked: list[int] = []

        def progress(account_id: int, _result: object) -> None:
            """Move the bar by one account."""
            checked.append(account_id)
            bar.progress(len(checked) / total, text=f"Checked {len(checked)} of {total}")

        try:
            refresh_fleet(console, on_result=progress)
        except (errors.StoreError, errors.VaultError) as error:
            st.error(f"The refresh stopped: {error}")
            return
        # Failing as the tiles count it, from the same snapshot the tiles below are drawn from.
        attention, summary = refresh_summary(ui.cached_fleet(console), checked)
        (st.warning if attention else st.success)(summary)

    def clear_filters() -> None:
        """Set every filter widget back to "all" (a callback: it runs before they are drawn)."""
        # Assigning the defaults, not deleting the keys: the browser is told the new values, so
        # the widgets show them and do not send the old filters back on the next change.
        st.session_state.update(FILTER_DEFAULTS)

    top_left, top_mid, top_right = st.columns([3, 1, 1], vertical_alignment="center")
    top_left.caption("Worst first. Select a row to open the account.")
    auto = top_mid.toggle("Auto-refresh", key="fleet_auto", help="Show new checks as stored.")
    if console.may_act and top_right.button(
        "Refresh all", key="refresh_all", icon=":material/refresh:", width="stretch"
    ):
        refresh_all()  # before the table is drawn, so it shows the new results
    ui.watcher_panel(console, auto_refresh=auto)

    def incident_banner(snapshot: FleetSnapshot) -> None:
        """Say once when most recently checked accounts fail the same way."""
        incident = snapshot.incident
        if incident is not None:
            st.error(
                f"**Fleet incident: {incident.summary}.** {incident.fix}",
                icon=":material/crisis_alert:",
            )

    def status_tiles(snapshot: FleetSnapshot) -> list[str]:
        """Show one tile per status present and one for every failing account; return the chosen."""
        counts = dict(
            zip(snapshot.counts["status"].astype(str), snapshot.counts["count"], strict=True)
        )
        failing = sum(int(n) for status, n in counts.items() if is_failing(status))
        tiles = {FAILING: failing} if failing else {}
        tiles |= {status: int(n) for status, n in counts.items()}
        return st.pills(
            "Status",
            list(tiles),
            selection_mode="multi",
            key="fleet_status",
            format_func=lambda tile: ui.tile_label(tile, tiles.get(tile, 0)),
            help="Click a tile to show only its accounts; click more tiles to add theirs.",
        )

    def table(snapshot: FleetSnapshot) -> None:
        """Status tiles and filters, the table (select a row to open it) and the CSV export."""
        fleet = snapshot.fleet
        statuses = status_tiles(snapshot)
        f_scope, f_kind, f_search, f_clear = st.columns([3, 3, 4, 2], vertical_alignment="bottom")
        scopes = f_scope.multiselect(
            "Needs",
            list(SCOPE_OPTIONS),
            key="fleet_scopes",
            format_func=SCOPE_OPTIONS.get,
            placeholder="Any scope",
        )
        kind = f_kind.selectbox(
            "Account", list(KIND_OPTIONS), key="fleet_kind", format_func=KIND_OPTIONS.get
        )
        search = f_search.text_input(
            "Search", key="fleet_search", placeholder="Label, sub-account or UID"
        )
        f_clear.button(
            "Clear filters",
            key="clear_filters",
            on_click=clear_filters,
            icon=":material/filter_alt_off:",
            disabled=not (statuses or scopes or kind != "all" or search),
            width="stretch",
        )
        shown = filter_fleet(
            fleet,
            statuses=statuses,
            scopes=scopes,
            kinds=[] if kind == "all" else [kind],
            search=search,
        )
        in_incident = snapshot.incident_accounts()
        if in_incident.any():
            # The banner already says it once: list the rest unless the operator asks for them.
            count = int(in_incident.sum())
            if not st.toggle(
                f"Show the {ui.plural(count, 'account')} in the incident", key="fleet_incident"
            ):
                shown = shown[~in_incident.loc[shown.index].to_numpy(dtype=bool)]
        if shown.empty:
            if in_incident.any() and not st.session_state.get("fleet_incident"):
                st.info(
                    "Every account shown is failing the same way: the banner above says what to "
                    "do.",
                    icon=":material/crisis_alert:",
                )
                return
            st.info(
                "No account matches these filters: clear them to see every account.",
                icon=":material/filter_alt_off:",
            )
            return
        view = ui.fleet_rows_view(fleet, shown)
        event = st.dataframe(
            view,
            key="fleet_table",
            on_select="rerun",
            selection_mode="single-row",
            hide_index=True,
            height=min(38 + ROW_HEIGHT * len(view), 38 + ROW_HEIGHT * 9),
            row_height=ROW_HEIGHT,
            column_config=ui.fleet_view_columns(),
        )
        rows = event.selection.rows if event is not None else []
        if rows and rows[0] < len(view):
            account_id = int(shown["account_id"].iloc[rows[0]])
            st.session_state[ui.SELECTED_ACCOUNT] = account_id
            ui.switch_page(ui.ACCOUNT_PAGE, {"account": str(account_id)})
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
        st.download_button(
            f"Export CSV ({ui.plural(len(shown), 'account')})",
            data=lambda: fleet_csv(shown),
            file_name=f"bindwatch-fleet-{stamp}.csv",
            mime="text/csv",
            key="export_csv",
            on_click="ignore",
            icon=":material/download:",
            help="The table as filtered, every column, no secrets.",
        )

    def signed_in() -> None:
        """Rerun the whole page to the sign-in form once this tab's session has ended."""
        # A fragment redrawn on its own skips app.py's gate: ask the session here (a timer's
        # redraw is no activity).
        if not ui.still_signed_in(touch=not auto):
            st.rerun(scope="app")

    def fleet_section() -> None:
        """The banner, tiles and table: a filter or a search redraws only them."""
        signed_in()
        snapshot = ui.cached_fleet(console)
        as_of = f"{snapshot.as_of:%Y-%m-%d %H:%M:%S} UTC"
        st.caption(f"{ui.plural(len(snapshot.fleet), 'account')} · as of {as_of}")
        incident_banner(snapshot)
        table(snapshot)

    def history_section() -> None:
        """The recent transitions and the fleet over time: its window redraws only them."""
        signed_in()
        alerts_view.transitions_feed(console)
        alerts_view.fleet_over_time(console)

    # Two fragments: searching the table does not redraw the chart, nor the chart the table.
    st.fragment(fleet_section)()
    st.fragment(history_section)()


ui.page(main)

"""Fleet: every bound account at a glance, worst first, each with what to do next."""

from datetime import UTC, datetime

import streamlit as st

from lib import fleet as fleet_lib
from lib import ui
from lib.fleet import (
    FleetSnapshot,
    filter_fleet,
    fleet_csv,
    fleet_view,
    status_colour,
    status_label,
)
from lib.health import SEVERITY
from lib.kucoin.probe_result import ProbeResult
from lib.store import StoreError
from lib.vault import VaultError

ui.require_frame()

SCOPE_OPTIONS = {"spot": "Spot", "futures": "Futures", "margin": "Margin"}
KIND_OPTIONS = {"all": "All accounts", "master": "Master accounts", "sub-account": "Sub-accounts"}
FILTER_KEYS = ("fleet_status", "fleet_scopes", "fleet_kind", "fleet_search")
STATUSES = [s.value for s in SEVERITY]

ui.demo_banner()
st.title("Fleet")
ui.show_flash()
console = ui.console()
if ui.cached_fleet(console).fleet.empty:
    ui.empty_fleet()
    st.stop()


def refresh_all() -> None:
    """Check every non-paused account now with a progress bar; the table below is then fresh."""
    total = fleet_lib.refreshable_count(console)
    if not total:
        st.info("Every account is paused: resume one to check it.")
        return
    bar = st.progress(0, text=f"Checking {total} accounts with KuCoin…")
    checked: list[int] = []

    def progress(account_id: int, result: ProbeResult) -> None:
        """Move the bar by one account."""
        checked.append(account_id)
        bar.progress(len(checked) / total, text=f"Checked {len(checked)} of {total}")

    try:
        fleet_lib.refresh_fleet(console, on_result=progress)
    except (StoreError, VaultError) as error:
        st.error(f"The refresh stopped: {error}")
        return
    # Failing as the tiles count it, from the same snapshot the tiles below are drawn from.
    attention, summary = fleet_lib.refresh_summary(ui.cached_fleet(console), checked)
    (st.warning if attention else st.success)(summary)


def clear_filters() -> None:
    """Forget every filter (a callback: widget state may change before widgets are drawn)."""
    for key in FILTER_KEYS:
        st.session_state.pop(key, None)


top_left, top_mid, top_right = st.columns([3, 1, 1], vertical_alignment="center")
top_left.caption("Worst first. Select a row to open the account.")
auto = top_mid.toggle("Auto-refresh", key="fleet_auto", help="Redraw the table every 30 s.")
if top_right.button("Refresh all", key="refresh_all", icon=":material/refresh:", width="stretch"):
    refresh_all()  # before the table is drawn, so it shows the new results


def incident_banner(snapshot: FleetSnapshot) -> None:
    """Say once when most recently checked accounts fail the same way."""
    incident = snapshot.incident
    if incident is not None:
        st.error(
            f"**Fleet incident: {incident.summary}.** {incident.fix}",
            icon=":material/crisis_alert:",
        )


def tiles(snapshot: FleetSnapshot) -> None:
    """Show one tile per status present, worst first."""
    counts = snapshot.counts
    per_row = 8
    for start in range(0, len(counts), per_row):
        chunk = counts.iloc[start : start + per_row]
        for column, row in zip(st.columns(per_row), chunk.itertuples(), strict=False):
            column.metric(status_label(str(row.status)), int(row.count))


def table(snapshot: FleetSnapshot) -> None:
    """Filters, the table (select a row to open it) and the CSV export."""
    fleet = snapshot.fleet
    counts = dict(zip(snapshot.counts["status"].astype(str), snapshot.counts["count"], strict=True))
    f_status, f_scope, f_kind, f_search = st.columns([3, 2, 2, 3])
    statuses = f_status.multiselect(
        "Status",
        list(counts),
        key="fleet_status",
        format_func=lambda s: f"{s} ({counts[s]})",
        placeholder="All statuses",
    )
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
        if not st.toggle(f"Show the {count} accounts in the incident", key="fleet_incident"):
            shown = shown[~in_incident.loc[shown.index].to_numpy(dtype=bool)]
    if shown.empty:
        if in_incident.any() and not st.session_state.get("fleet_incident"):
            st.info(
                "Every account shown is failing the same way: the banner above says what to do.",
                icon=":material/crisis_alert:",
            )
            return
        st.info("No account matches these filters.", icon=":material/filter_alt_off:")
        st.button("Clear filters", key="clear_filters", on_click=clear_filters)
        return
    view = fleet_view(shown)
    event = st.dataframe(
        view,
        key="fleet_table",
        on_select="rerun",
        selection_mode="single-row",
        hide_index=True,
        height=min(38 + 35 * len(view), 640),
        column_order=[c for c in view.columns if c != "account_id"],
        column_config={
            "label": st.column_config.TextColumn("Account", pinned=True),
            "status": st.column_config.MultiselectColumn(
                "Status",
                options=STATUSES,
                color=[status_colour(s) for s in STATUSES],
                width="medium",
            ),
            "diagnosis": st.column_config.TextColumn("Diagnosis", width="large"),
            "spot": st.column_config.TextColumn(
                "Spot", width="small", help="✓ granted · ✗ needed but missing · – not needed"
            ),
            "futures": st.column_config.TextColumn("Futures", width="small"),
            "margin": st.column_config.TextColumn("Margin", width="small"),
            "whitelist": st.column_config.TextColumn(
                "Whitelist", help="Platform egress IPs the key's IP whitelist covers"
            ),
            "last_sync_at": st.column_config.DatetimeColumn(
                "Last sync (UTC)", format="YYYY-MM-DD HH:mm", timezone="UTC"
            ),
            "sync_age": st.column_config.TextColumn("Sync age"),
            "going_stale_at": st.column_config.DatetimeColumn(
                "Goes stale at (UTC)",
                format="YYYY-MM-DD HH:mm",
                timezone="UTC",
                help="Without another successful check, the account turns STALE then.",
            ),
            "key_age_days": st.column_config.NumberColumn("Key age", format="%d d"),
            "expires_at": st.column_config.DatetimeColumn(
                "KuCoin may delete on",
                format="YYYY-MM-DD",
                timezone="UTC",
                help="Trading keys without an IP whitelist are deleted after 30 days unused.",
            ),
            "hint": st.column_config.TextColumn("Next step", width="large"),
            "account": st.column_config.TextColumn("Master / sub"),
            "uid": st.column_config.TextColumn("UID"),
        },
    )
    rows = event.selection.rows if event is not None else []
    if rows and rows[0] < len(view):
        account_id = int(view.iloc[rows[0]]["account_id"])
        st.session_state[ui.SELECTED_ACCOUNT] = account_id
        st.switch_page(ui.ACCOUNT_PAGE, query_params={"account": str(account_id)})
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    st.download_button(
        f"Export CSV ({len(shown)} accounts)",
        data=lambda: fleet_csv(shown),
        file_name=f"bindwatch-fleet-{stamp}.csv",
        mime="text/csv",
        key="export_csv",
        on_click="ignore",
        icon=":material/download:",
        help="The table as filtered, every column, no secrets.",
    )


def fleet_section() -> None:
    """The banner, tiles and table: redrawn on their own when auto-refresh is on."""
    snapshot = ui.cached_fleet(console)
    st.caption(f"{len(snapshot.fleet)} accounts · as of {snapshot.as_of:%Y-%m-%d %H:%M:%S} UTC")
    incident_banner(snapshot)
    tiles(snapshot)
    table(snapshot)


st.fragment(fleet_section, run_every=f"{ui.FLEET_TTL_S}s" if auto else None)()

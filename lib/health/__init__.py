"""Account health: the one owner of every rule the Fleet, binding, `status` and `check` apply.

Every rule is a pure function of (facts observed, policy, now), as in Healthchecks'
`get_status()` / `going_down_after()`: nothing here is stored, nothing reads the clock.
Each concern has its module; import a name from the module that owns it:

- policy: HealthPolicy, the thresholds (freshness, rotation age, clock, 30-day rule, incident)
  and when each is crossed.
- checks: what one check says: passed, transient ("retrying") or KuCoin's verdict.
- status: the statuses worst first, which condition proposes which, worst wins.
- coverage: the permissions an account needs, and which platform IPs a masked whitelist
  covers.
- risks: why a working key may stop working (AT_RISK), gravest first, each with its fix.
- wording: the diagnosis and next step per status; a check's verdict line and warnings.
- facts: AccountFacts, what the rules found about one account, in plain values.
- assessment: one check, judged as the Fleet will judge the account bound with it.
- inputs: the columns of the accounts and probes frames the store provides.
- fleet: the rules over a whole fleet at once (pandas): one row per account, worst first.
- account: one account's fleet row, permission grid and whitelist coverage (pandas).
- incident: most recently checked accounts failing the same way, said once (pandas).

The modules above `inputs` import no pandas: `python -m lib check` judges a key with them.
"""

# The contract with the store below: the columns it provides, and what its SQL restates.
from lib.health.checks import IP_BLOCKED_CODE
from lib.health.inputs import ACCOUNT_COLUMNS, PROBE_COLUMNS
from lib.health.policy import HealthPolicy

__all__ = ["ACCOUNT_COLUMNS", "IP_BLOCKED_CODE", "PROBE_COLUMNS", "HealthPolicy"]

"""A faithful local KuCoin: the spot and futures REST paths bindwatch uses, for simulated accounts.

Built from the KuCoin reference (signing, endpoints, codes, rate limits, whitelist), not from our
client, so both our client and third-party clients (ccxt) can be checked against it.

    accounts    SimAccount, Faults and the JSON accounts file (SAMPLE_ACCOUNTS is the bundled one)
    gateway     Simulator: the state and KuCoin's rules, in the order the gateway applies them
    wire        SimRequest in, SimResponse out: what the gateway reads and writes
    transport   SimulatorTransport: the simulator in-process, as an httpx transport
    server      SimulatorServer: the simulator over real HTTP, a spot and a futures server
    cli         `python -m lib simulate`

    from lib.kucoin.sim import SimAccount, Simulator, SimulatorServer
    with SimulatorServer(Simulator([SimAccount("key", "secret", "passphrase", uid=1)])) as kucoin:
        ...  # kucoin.spot_url, kucoin.futures_url
"""

from lib.kucoin.sim.accounts import (
    SAMPLE_ACCOUNTS,
    AccountsError,
    Faults,
    SimAccount,
    account_from_dict,
    accounts_from_json,
    load_accounts,
)
from lib.kucoin.sim.gateway import ENDPOINTS, MESSAGES, Simulator, key_info, mask_ip
from lib.kucoin.sim.server import SimulatorServer
from lib.kucoin.sim.transport import SimulatorTransport
from lib.kucoin.sim.wire import FUTURES, HOSTS, SPOT, SimRequest, SimResponse

__all__ = [
    "ENDPOINTS",
    "FUTURES",
    "HOSTS",
    "MESSAGES",
    "SAMPLE_ACCOUNTS",
    "SPOT",
    "AccountsError",
    "Faults",
    "SimAccount",
    "SimRequest",
    "SimResponse",
    "Simulator",
    "SimulatorServer",
    "SimulatorTransport",
    "account_from_dict",
    "accounts_from_json",
    "key_info",
    "load_accounts",
    "mask_ip",
]

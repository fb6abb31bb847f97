"""KuCoin: the client, the probe, and a faithful local simulator."""

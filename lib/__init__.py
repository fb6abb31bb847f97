"""bindwatch: bind KuCoin API keys and keep a fleet of them healthy."""

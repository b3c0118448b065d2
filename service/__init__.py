"""tokenbroker: short-lived scoped tokens for services, and the secrets behind them."""

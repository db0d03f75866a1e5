"""The call engine: `pipeline` (input policies -> recorder -> router -> output policies) and `router` (alias ->
deployments, retries, cooldowns, fallbacks)."""

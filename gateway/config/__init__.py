"""gateway.toml and the environment, read once into frozen, typed settings: the only reader of either.

`settings` (the file, [server], [providers], [models], [router], [recording], [logging], [metrics]),
`policy_settings` ([auth], [limits], [guards]), `toml_reader` (typed table access that reports every problem with
its TOML path).
"""

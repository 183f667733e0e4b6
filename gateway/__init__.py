"""The aiohttp gateway that puts managed APIs in front of legacy backends, and the `banyan` CLI root.

Only the CLI root (`gateway.cli`) exists so far; the gateway itself is built on `legacy_adapters`
and `cutover` (see DESIGN.md).
"""

"""The aiohttp gateway: managed APIs in front of legacy backends and the cloud ERP, the SOAP
passthrough, the admin API and the migration console. The `banyan` command is in `cli/`."""

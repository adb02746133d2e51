"""The platform wallet and the local ledger (ASG_BSV_NETWORK=local): docs/ledger.md."""

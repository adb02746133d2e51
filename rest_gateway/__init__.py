"""The public REST API (`/v1`): JSON in, gRPC to the core, JSON out. No business rules here."""

"""Thin gRPC adapters: decode the request, call the domain and the store, encode the reply."""

"""Pure business rules: no gRPC, no I/O. Everything here is testable with plain values."""

"""Code every process shares that is not part of the gRPC contract (logging set-up).

The gateway, the worker agent and the SDK may import this and the generated stubs
(`asg_grpc.v1`), never the core's internals.
"""

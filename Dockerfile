# One image for every ASG Refinery process; the compose file (compose.yaml) picks the command.
# Not built in CI (no Docker on the build machine); tests/e2e/test_deploy_files.py checks that
# its ports, commands and settings are the code's.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY asg_grpc asg_grpc
COPY asg_common asg_common
COPY rest_gateway rest_gateway
COPY asg_gateway asg_gateway
COPY worker_agent worker_agent
COPY asg_challenge asg_challenge
RUN pip install . && useradd --system --home-dir /var/lib/asg --create-home asg

USER asg
VOLUME ["/var/lib/asg"]
ENV ASG_DATA_DIR=/var/lib/asg
# 8081: the REST gateway (seed 001's local path); 50051: the core's gRPC; 9464: core metrics.
EXPOSE 8081 50051 9464
CMD ["asg-server"]

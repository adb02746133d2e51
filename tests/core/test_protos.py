"""The committed stubs match proto/ (`make proto` leaves nothing to commit), and every RPC is
reachable over REST or says why not (the parity test of STYLE.md)."""

from __future__ import annotations

import filecmp
import importlib
import importlib.util
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import asg_grpc.v1
from rest_gateway.app import create_app
from rest_gateway.settings import GatewaySettings

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_protos.py"
STUBS = ROOT / "asg_grpc" / "v1"

# Every RPC of asg.v1 → the gateway route that serves it.
ROUTES: dict[str, tuple[str, str]] = {
    "asg.v1.TaskService.SubmitTasks": ("POST", "/v1/tasks"),
    "asg.v1.TaskService.SubmitBatch": ("POST", "/v1/tasks/batch"),
    "asg.v1.TaskService.GetTask": ("GET", "/v1/tasks/{task_id}"),
    "asg.v1.TaskService.GetTaskResult": ("GET", "/v1/tasks/{task_id}/result"),
    "asg.v1.TaskService.ListTasks": ("GET", "/v1/tasks"),
    "asg.v1.TaskService.GetBatchStatus": ("GET", "/v1/tasks/batch/{batch_id}"),
    "asg.v1.TaskService.CancelTask": ("DELETE", "/v1/tasks/{task_id}"),
    "asg.v1.BillingService.RegisterCustomer": ("POST", "/v1/customers"),
    "asg.v1.BillingService.GetCustomer": ("GET", "/v1/customers/me"),
    "asg.v1.BillingService.UpdateCustomer": ("PATCH", "/v1/customers/me"),
    "asg.v1.BillingService.RotateKey": ("POST", "/v1/customers/me/keys"),
    "asg.v1.BillingService.ListKeys": ("GET", "/v1/customers/me/keys"),
    "asg.v1.BillingService.GetUsage": ("GET", "/v1/billing/usage"),
    "asg.v1.BillingService.ListInvoices": ("GET", "/v1/billing/invoices"),
    "asg.v1.WebhookService.CreateWebhook": ("POST", "/v1/webhooks"),
    "asg.v1.WebhookService.ListWebhooks": ("GET", "/v1/webhooks"),
    "asg.v1.WebhookService.DeleteWebhook": ("DELETE", "/v1/webhooks/{webhook_id}"),
    "asg.v1.WebhookService.ListDeliveries": ("GET", "/v1/webhooks/{webhook_id}/deliveries"),
    "asg.v1.JobService.CreateJob": ("POST", "/v1/jobs"),
    "asg.v1.JobService.GetJob": ("GET", "/v1/jobs/{job_id}"),
    "asg.v1.JobService.ListJobs": ("GET", "/v1/jobs"),
    "asg.v1.JobService.ExportJob": ("GET", "/v1/jobs/{job_id}/export"),
    "asg.v1.ChainService.GetTaskReceipt": ("GET", "/v1/tasks/{task_id}/receipt"),
    "asg.v1.ChainService.GetHeaders": ("GET", "/v1/chain/headers"),
    "asg.v1.ChainService.GetTransaction": ("GET", "/v1/chain/tx/{txid}"),
    "asg.v1.DashboardService.GetOverview": ("GET", "/v1/dashboard/overview"),
    "asg.v1.DashboardService.ListDashboardTasks": ("GET", "/v1/dashboard/tasks"),
    "asg.v1.DashboardService.GetQuality": ("GET", "/v1/dashboard/quality"),
    "asg.v1.DashboardService.GetDashboardUsage": ("GET", "/v1/dashboard/usage"),
}
# RPCs deliberately not on the public REST API, with the reason.
NOT_ROUTED: dict[str, str] = {
    "asg.v1.TaskService.SubmitTask": (
        "single submission for gRPC clients; the gateway serves POST /v1/tasks with SubmitTasks,"
        " which carries many concurrent ones in one call"
    ),
    "asg.v1.LabelingService.RegisterWorker": (
        "operator action with the operator token (`asg worker register`), not a customer call"
    ),
    "asg.v1.LabelingService.ListWorkerQuality": (
        "operator action with the operator token (`asg worker list/show`), not a customer call"
    ),
    "asg.v1.LabelingService.ReinstateWorker": (
        "operator action with the operator token (`asg worker reinstate`), not a customer call"
    ),
    "asg.v1.BillingService.SetCustomerTier": (
        "operator action with the operator token (`asg customer tier`), not a customer call"
    ),
    "asg.v1.LabelingService.Work": (
        "bidirectional stream for worker agents; HTTP/JSON request-response cannot carry it"
    ),
}


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_protos", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def differences(left: Path, right: Path) -> list[str]:
    """Files present on one side only, or with other bytes (compared by content)."""
    names = {p.name for p in left.iterdir() if p.is_file()} | {p.name for p in right.iterdir() if p.is_file()}
    return sorted(
        name
        for name in names
        if not ((left / name).is_file() and (right / name).is_file())
        or not filecmp.cmp(left / name, right / name, shallow=False)
    )


def copy_of_repo(tmp: Path) -> Path:
    """What gen_protos.py reads and writes, in a folder of its own."""
    (tmp / "scripts").mkdir()
    shutil.copy2(SCRIPT, tmp / "scripts" / SCRIPT.name)
    shutil.copytree(ROOT / "proto", tmp / "proto")
    shutil.copytree(STUBS, tmp / "asg_grpc" / "v1", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp


def run_check(script: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=120
    )


# freshness ------------------------------------------------------------------------------


def test_gen_protos_check_passes_on_the_committed_stubs() -> None:
    done = run_check(SCRIPT)

    assert done.returncode == 0, done.stdout + done.stderr


def test_regenerated_stubs_equal_the_committed_ones_file_by_file(tmp_path: Path) -> None:
    load_script().generate(tmp_path / "v1")

    assert differences(tmp_path / "v1", STUBS) == []


def test_the_comparison_detects_a_hand_edited_stub(tmp_path: Path) -> None:
    load_script().generate(tmp_path / "v1")
    edited = tmp_path / "v1" / "tasks_pb2_grpc.py"
    edited.write_text(edited.read_text().replace("SubmitTask", "SubmitTasks", 1))

    assert differences(tmp_path / "v1", STUBS) == ["tasks_pb2_grpc.py"]


def test_check_fails_on_a_hand_edited_stub(tmp_path: Path) -> None:
    repo = copy_of_repo(tmp_path)
    stub = repo / "asg_grpc" / "v1" / "billing_pb2.py"
    stub.write_text(stub.read_text() + "# edited by hand\n")

    done = run_check(repo / "scripts" / SCRIPT.name)

    assert done.returncode == 1
    assert "billing_pb2.py" in done.stdout


def test_check_fails_when_a_proto_changed_without_regenerating(tmp_path: Path) -> None:
    repo = copy_of_repo(tmp_path)
    proto = repo / "proto" / "asg" / "v1" / "common.proto"
    proto.write_text(proto.read_text() + "\nmessage Added {\n  string name = 1;\n}\n")

    done = run_check(repo / "scripts" / SCRIPT.name)

    assert done.returncode == 1
    assert "common_pb2.py" in done.stdout


def test_check_fails_on_a_missing_stub(tmp_path: Path) -> None:
    repo = copy_of_repo(tmp_path)
    (repo / "asg_grpc" / "v1" / "tasks_pb2.pyi").unlink()

    done = run_check(repo / "scripts" / SCRIPT.name)

    assert done.returncode == 1
    assert "tasks_pb2.pyi" in done.stdout


def test_stubs_are_marked_generated() -> None:
    for path in sorted(STUBS.glob("*.py*")):
        assert path.read_text().startswith("# Generated by scripts/gen_protos.py"), path.name


# parity: RPC ⇄ REST route ---------------------------------------------------------------


def all_rpcs() -> set[str]:
    found: set[str] = set()
    for info in pkgutil.iter_modules(asg_grpc.v1.__path__):
        if not info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"asg_grpc.v1.{info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            found |= {method.full_name for method in service.methods}
    return found


def gateway_routes() -> set[tuple[str, str]]:
    """(METHOD, path template) of every public route of the gateway.

    Read from the app's OpenAPI document rather than `app.routes`: FastAPI includes routers
    lazily (`app.routes` holds the included routers, not their routes), and a public route
    belongs in the published reference anyway.
    """
    paths = create_app(GatewaySettings()).openapi()["paths"]
    return {(method.upper(), path) for path, operations in paths.items() for method in operations}


def test_every_rpc_has_a_gateway_route_or_a_reason() -> None:
    rpcs = all_rpcs()

    unaccounted = rpcs - set(ROUTES) - set(NOT_ROUTED)
    assert not unaccounted, f"add a gateway route (and a ROUTES entry) or a NOT_ROUTED reason: {unaccounted}"
    assert not (set(ROUTES) | set(NOT_ROUTED)) - rpcs, "the table names RPCs that no longer exist"
    assert not set(ROUTES) & set(NOT_ROUTED)
    assert all(reason.strip() for reason in NOT_ROUTED.values())


@pytest.mark.parametrize(("rpc", "route"), sorted(ROUTES.items()))
def test_the_gateway_serves_the_route_of(rpc: str, route: tuple[str, str]) -> None:
    assert route in gateway_routes(), f"{rpc} should be served at {route}"

"""The dashboard API of seed 003 against `asg-challenge` as a process, over real HTTP."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import subprocess
from pathlib import Path

import httpx

from tests.challenge.conftest import BIN, PASSWORD, USER, Gateway, Upstream, text_dataset


def run_cli(tmp: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ASG_CHALLENGE_")}
    return subprocess.run(
        [str(BIN), "--upstream", "http://127.0.0.1:9", "--data-dir", str(tmp / "d")],
        env={**base, **env}, capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def test_refuses_to_start_without_a_password(tmp_path: Path) -> None:
    out = run_cli(tmp_path)
    assert out.returncode == 2
    assert "ASG_CHALLENGE_DASHBOARD_PASSWORD is not set" in out.stderr


def test_refuses_a_password_under_12_characters(tmp_path: Path) -> None:
    out = run_cli(tmp_path, ASG_CHALLENGE_DASHBOARD_PASSWORD="short")
    assert out.returncode == 2
    assert "at least 12" in out.stderr


def test_a_taken_listen_address_exits_2_with_one_line_naming_the_setting(
    tmp_path: Path, gateway: Gateway
) -> None:
    taken = gateway.url.removeprefix("http://")
    out = run_cli(tmp_path, ASG_CHALLENGE_DASHBOARD_PASSWORD=PASSWORD, ASG_CHALLENGE_LISTEN=taken)
    assert out.returncode == 2, out.stderr
    line = f"asg-challenge: --listen / ASG_CHALLENGE_LISTEN {taken}: cannot listen there"
    assert out.stderr.splitlines() == [f"{line} (Address already in use)"]
    assert not (tmp_path / "d").exists()  # refused before the store was opened


def test_bad_explore_share_and_log_level_exit_2(tmp_path: Path) -> None:
    for env, named in (
        ({"ASG_CHALLENGE_EXPLORE": "1.5"}, "ASG_CHALLENGE_EXPLORE must be a share from 0 to 1"),
        ({"ASG_CHALLENGE_EXPLORE": "lots"}, "ASG_CHALLENGE_EXPLORE must be a share from 0 to 1"),
        ({"ASG_CHALLENGE_LOG_LEVEL": "LOUD"}, "ASG_CHALLENGE_LOG_LEVEL must be one of"),
    ):
        out = run_cli(tmp_path, ASG_CHALLENGE_DASHBOARD_PASSWORD=PASSWORD, **env)
        assert out.returncode == 2 and named in out.stderr, out.stderr


def test_data_dir_and_files_are_private(gateway: Gateway) -> None:
    assert stat.S_IMODE(gateway.data_dir.stat().st_mode) == 0o700
    files = [p for p in gateway.data_dir.iterdir() if p.is_file()]
    assert files
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files), [
        (p.name, oct(p.stat().st_mode)) for p in files
    ]


def test_no_credentials_is_401_with_www_authenticate(gateway: Gateway) -> None:
    for auth in (None, (USER, "wrong-password!!"), ("root", PASSWORD)):
        r = httpx.get(f"{gateway.url}/dashboard/api/metrics", auth=auth)
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Basic realm=")
        assert r.json() == {"error": "dashboard credentials required"}


def test_writes_need_json_and_same_origin(gateway: Gateway) -> None:
    with gateway.dash() as d:
        form = d.post(
            "/config",
            content=b"risk_threshold=0.1",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert form.status_code == 415
        cross = d.post("/config", json={"risk_threshold": 0.1}, headers={"Origin": "https://evil.example"})
        assert cross.status_code == 403
        assert d.get("/config").json()["risk_threshold"] == 0.5
        same = d.post("/config", json={"risk_threshold": 0.1}, headers={"Origin": gateway.url})
        assert same.status_code == 200


def test_config_partial_update_and_422_applies_nothing(gateway: Gateway) -> None:
    with gateway.dash() as d:
        assert d.get("/config").json() == {
            "risk_threshold": 0.5, "consensus_threshold": 0.6, "proxy_timeout": 30.0,
            "challenge_token_ttl": 300, "log_level": "INFO",
        }  # fmt: skip
        r = d.post("/config", json={"risk_threshold": 0.7})
        assert r.status_code == 200
        assert r.json()["risk_threshold"] == 0.7
        assert r.json()["proxy_timeout"] == 30.0
        bad = d.post("/config", json={"proxy_timeout": 5, "risk_threshold": 1.5})
        assert bad.status_code == 422
        assert "risk_threshold" in bad.json()["error"]
        unknown = d.post("/config", json={"risk_treshold": 0.2})
        assert unknown.status_code == 422 and "risk_treshold" in unknown.json()["error"]
        assert d.get("/config").json()["proxy_timeout"] == 30.0
        assert d.get("/config").json()["risk_threshold"] == 0.7


def test_datasets_items_and_delete_cascades(gateway: Gateway) -> None:
    with gateway.dash() as d:
        assert d.get("/item-datasets").json() == []
        made = d.post("/item-datasets", json={"name": "ImageNet Cats", "modality": "image"})
        assert made.status_code == 201
        ds = made.json()
        assert set(ds) == {"id", "name", "modality", "item_count", "created_at"}
        assert ds["item_count"] == 0 and ds["created_at"].endswith("Z")
        png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNg+M8AAAMBAQAY3Y20AAAAAElFTkSuQmCC"
        jsonl = "\n".join(json.dumps({"image_base64": png, "options": ["cat", "dog"]}) for _ in range(3))
        up = d.post(
            f"/item-datasets/{ds['id']}/items",
            content=jsonl,
            headers={"Content-Type": "application/x-ndjson"},
        )
        assert up.status_code == 201, up.text
        assert up.json() == {"added": 3, "item_count": 3}
        bad = d.post(f"/item-datasets/{ds['id']}/items", json=[{"image_base64": png, "options": ["cat"]}])
        assert bad.status_code == 422 and "items[0].options" in bad.json()["error"]
        gold = d.post(
            f"/item-datasets/{ds['id']}/items",
            json=[{"image_base64": png, "options": ["cat", "dog"], "gold_label": "cow"}],
        )
        assert gold.status_code == 422 and "gold_label" in gold.json()["error"]
        assert d.get(f"/item-datasets/{ds['id']}").json()["item_count"] == 3
        assert d.get("/metrics").json()["total_items"] == 3
        assert d.delete(f"/item-datasets/{ds['id']}").status_code == 204
        assert d.get(f"/item-datasets/{ds['id']}").status_code == 404
        assert d.get(f"/item-datasets/{ds['id']}/labeled/export?fmt=csv").status_code == 404
        assert d.get("/metrics").json()["total_items"] == 0
        assert d.post("/item-datasets", json={"name": "x", "modality": "smell"}).status_code == 422


def test_export_formats_and_bad_fmt(gateway: Gateway) -> None:
    ds = text_dataset(gateway, [{"text": "a cat", "options": ["cat", "dog"]}])
    with gateway.dash() as d:
        assert d.get(f"/item-datasets/{ds}/labeled/export?fmt=xml").status_code == 422
        c = d.get(f"/item-datasets/{ds}/labeled/export?fmt=csv")
        assert c.status_code == 200 and c.headers["content-type"].startswith("text/csv")
        assert next(csv.reader(io.StringIO(c.text))) == [
            "item_id", "dataset_id", "label", "agreement", "votes", "labeled_at", "external_id",
        ]  # fmt: skip
        j = d.get(f"/item-datasets/{ds}/labeled/export?fmt=json")
        assert j.headers["content-type"] == "application/json" and j.json() == []
        n = d.get(f"/item-datasets/{ds}/labeled/export?fmt=jsonl")
        assert n.headers["content-type"] == "application/x-ndjson" and n.text == ""


def test_apikeys_raw_key_once_and_revocation(gateway: Gateway, upstream: Upstream) -> None:
    ds = text_dataset(gateway, [{"text": "a cat", "options": ["cat", "dog"]}])
    with gateway.dash() as d:
        made = d.post("/apikeys", json={"label": "production", "datasets": [ds], "sample_rate": 1.0})
        assert made.status_code == 201
        key = made.json()
        assert key["raw_key"].startswith("hg_") and len(key["raw_key"]) == 35
        assert key["key_prefix"] == key["raw_key"][:5]
        assert key["datasets"] == [ds] and key["sample_rate"] == 1.0
        listed = d.get("/apikeys")
        assert key["raw_key"] not in listed.text
        assert [k["key_prefix"] for k in listed.json()] == [key["key_prefix"]]
        assert d.post("/apikeys", json={"label": "x", "datasets": ["nope"]}).status_code == 422
        assert d.post("/apikeys", json={"label": "x", "sample_rate": 2}).status_code == 422
        gateway.config(risk_threshold=1.0)
        headers = {"X-Gateway-Key": key["raw_key"]}
        assert httpx.get(f"{gateway.url}/page", headers=headers).status_code == 200
        assert d.delete(f"/apikeys/{key['id']}").status_code == 204
        before = upstream.count()
        revoked = httpx.get(f"{gateway.url}/page", headers=headers)
        assert revoked.status_code == 403
        assert upstream.count() == before
        assert d.delete("/apikeys/00000000-0000-0000-0000-000000000000").status_code == 404
    raw = (gateway.data_dir / "challenge.sqlite3").read_bytes()
    assert key["raw_key"].encode() not in raw


def test_proxy_rules_crud_and_bad_regex(gateway: Gateway) -> None:
    with gateway.dash() as d:
        r = d.post("/proxy-rules", json={"pattern": "/health", "match_type": "exact", "priority": 100})
        assert r.status_code == 201
        rule = r.json()
        assert rule == {**rule, "pattern": "/health", "match_type": "exact", "priority": 100, "enabled": True}
        bad = d.post("/proxy-rules", json={"pattern": "/a(", "match_type": "regex"})
        assert bad.status_code == 422 and "pattern" in bad.json()["error"]
        assert d.post("/proxy-rules", json={"pattern": "/a", "match_type": "glob"}).status_code == 422
        p = d.patch(f"/proxy-rules/{rule['id']}", json={"enabled": False})
        assert p.status_code == 200 and p.json()["enabled"] is False and p.json()["priority"] == 100
        assert (
            d.patch(f"/proxy-rules/{rule['id']}", json={"match_type": "regex", "pattern": "("}).status_code
            == 422
        )
        assert d.get("/proxy-rules").json()[0]["match_type"] == "exact"
        assert d.delete(f"/proxy-rules/{rule['id']}").status_code == 204
        assert d.get("/proxy-rules").json() == []
        assert d.delete(f"/proxy-rules/{rule['id']}").status_code == 404


def test_metrics_and_ml_status_shapes(gateway: Gateway) -> None:
    with gateway.dash() as d:
        assert d.get("/metrics").json() == {
            "total_challenges": 0, "total_items": 0, "solve_rate_pct": 0.0, "recent_sessions": 0,
        }  # fmt: skip
        assert d.get("/ml/status").json() == {
            "model_ready": False,
            "sessions_with_features": 0,
            "last_trained": None,
        }
        t = d.post("/ml/train")
        assert t.status_code == 200 and t.json() == {"status": "training_started"}
        assert d.get("/ml/status").json()["model_ready"] is False  # too few labeled sessions

"""`make run` (`asg dev`) puts asg-challenge in front of the demo site, prints the dashboard's
password, and the README's challenge-gateway block runs as written against it."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_docs_run import CURL, ROOT, VENV_BIN, allowed_codes, blocks
from tests.e2e.test_labeling import asg_dev

pytestmark = pytest.mark.slow


def readme_block() -> str:
    found = [b.code for b in blocks() if b.page.name == "README.md" and "localhost:8090" in b.code]
    assert len(found) == 1, "README.md has one challenge-gateway block"
    return found[0]


def test_asg_dev_serves_the_demo_site_through_the_gateway_and_the_readme_path_runs(tmp_path: Path) -> None:
    with asg_dev(tmp_path, workers=0) as dev:
        line = r"dashboard  (http://\S+)/dashboard/api/   user (\S+)   password (\S+)"
        banner = re.search(line, dev.output())
        assert banner, dev.output()
        url, user, password = banner.groups()
        stored = tmp_path / "data" / "challenge" / "dashboard-password"
        assert stored.read_text().strip() == password and len(password) >= 12
        assert stat.S_IMODE(stored.stat().st_mode) == 0o600

        code = readme_block().replace("localhost:8090", url.removeprefix("http://"))
        code = code.replace("CG_PASSWORD='…'", f"CG_PASSWORD='{password}'")
        codes = tmp_path / "codes"
        codes.touch()
        ran = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", CURL + code],
            capture_output=True, text=True, timeout=60, cwd=ROOT,
            env={**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "DOCS_RUN_CODES": str(codes)},
        )  # fmt: skip
        assert ran.returncode == 0, f"{ran.stdout}\n{ran.stderr}"
        out = ran.stdout
        seen = codes.read_text().split()
        assert [c for c in seen if not c.startswith("2") and c not in allowed_codes(code)] == [], seen

        assert "<h1>Welcome</h1>" in out  # the browser-like request reached the demo site
        assert '{"error":"challenge_required"}' in out and "403" in seen  # plain curl did not
        assert out.count("<h1>A quick check</h1>") == 1
        for text in ("a tabby on a sofa", "a beagle with a ball", "something furry"):
            assert f'<p class="cg-text">{text}</p>' in out  # the dataset's items on the page
        assert "Tabby cat poster" in out  # the /api/ rule let curl through, at once
        assert out.rstrip().endswith("item_id,dataset_id,label,agreement,votes,labeled_at,external_id")

        with httpx.Client(base_url=f"{url}/dashboard/api", auth=(user, password), timeout=5) as dash:
            metrics = dash.get("/metrics").json()
        assert metrics["total_items"] == 3
        assert metrics["total_challenges"] == 3  # plain curl's JSON 403 and the two pages
        assert httpx.get(f"{url}/dashboard/api/metrics", timeout=5).status_code == 401

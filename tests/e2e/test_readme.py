"""The README walkthrough, pasted into a shell against the test stack: it must keep working."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path
from urllib.parse import urlparse

from stack.invariants import violations

README = Path(__file__).resolve().parents[2] / "README.md"


def _walkthrough(stack) -> str:
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), re.S)
    script = "\n".join(b for b in blocks if "make up" not in b)
    # The README's default ports become the test stack's free ports.
    for default, actual in {
        "127.0.0.1:8080": stack.public_grpc,
        "127.0.0.1:8081": stack.mesh_grpc,
        "127.0.0.1:8082": urlparse(stack.admin_api_url).netloc,
        "127.0.0.1:9901": urlparse(stack.envoy_admin_url).netloc,
        "postgresql://postgres@127.0.0.1:15432/ticketmesh": stack.database_url,
    }.items():
        script = script.replace(default, actual)
    # The watch streams until stopped; give it two seconds.
    return script.replace("curl -sN ", "timeout 2 curl -sN ")


async def test_readme_walkthrough_works_when_pasted(stack) -> None:
    result = await asyncio.to_thread(
        subprocess.run,
        ["bash", "-c", _walkthrough(stack)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=README.parent,
    )
    out = result.stdout
    assert out.count('"service":"inventory"') == 4
    assert len(set(re.findall(r'"replica":"(inventory-\d)"', out))) == 2
    assert '"id":"EVNT-ROCK-2025"' in out
    assert "EVNT-ROCK-2025" in out and '"fieldViolations"' in out
    assert "ticketing.orders.v1.OrderService" in out
    assert "Unimplemented" in result.stderr + out
    assert '"status":"CONFIRMED"' in out
    assert '"kind":"ORDER_CONFIRMED"' in out
    assert "idempotent-replayed: true" in out
    assert "409" in out and "PAYMENT_DECLINED" in out
    assert '"status":"CANCELLED"' in out
    assert await violations(stack.database_url, ["EVNT-ROCK-2025"]) == []

"""Renders envoy/envoy.yaml.j2 into a concrete Envoy config for one stack."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = REPO_ROOT / "envoy" / "envoy.yaml.j2"
DESCRIPTOR = REPO_ROOT / "envoy" / "ticketing.binpb"
# Every cluster the routes name; each must be rendered, even without backends.
CLUSTERS = ("inventory", "orders", "payments", "notify")


@dataclass(frozen=True)
class EnvoySettings:
    """What the template needs: where to listen, the descriptor set, and each cluster's backends."""

    clusters: Mapping[str, Sequence[tuple[str, int]]]
    public_port: int = 8080
    mesh_port: int = 8081
    admin_api_port: int = 8082
    admin_port: int = 9901
    bind_address: str = "127.0.0.1"
    descriptor_path: Path = field(default=DESCRIPTOR)


def render_envoy_config(settings: EnvoySettings) -> str:
    """Returns the YAML config; a cluster missing from settings.clusters renders with no hosts."""
    unknown = set(settings.clusters) - set(CLUSTERS)
    if unknown:
        raise ValueError(f"unknown clusters {sorted(unknown)}; the routes know {list(CLUSTERS)}")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE.parent),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    return env.get_template(TEMPLATE.name).render(
        bind_address=settings.bind_address,
        public_port=settings.public_port,
        mesh_port=settings.mesh_port,
        admin_api_port=settings.admin_api_port,
        admin_port=settings.admin_port,
        descriptor_path=str(Path(settings.descriptor_path).resolve()),
        clusters={name: list(settings.clusters.get(name, ())) for name in CLUSTERS},
    )

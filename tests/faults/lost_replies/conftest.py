"""The lost-reply suite's mesh: a stack of its own whose Envoy reaches inventory-1, inventory-2 and
payments-1 through lossy links, so a test can let a callee act and lose its answer on the way back.
It overrides `stack`, so the fault suite's shared fixtures (`rest`) use this mesh and the other
fault stack is never started for this package."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import pytest

from stack import Stack, StackSettings
from tests.faults.lossy_link import Arming, LossyLink
from tests.running import running_stack

LINKED = ("inventory-1", "inventory-2", "payments-1")


@dataclass
class LossyMesh:
    """The running stack, the links in front of its replicas and the arming they share."""

    stack: Stack
    arming: Arming
    links: dict[str, LossyLink]


@pytest.fixture(scope="session")
def lossy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LossyMesh]:
    arming = Arming()
    links: dict[str, LossyLink] = {}

    def through_links(settings: StackSettings) -> Mapping[str, int]:
        for replica in settings.replicas():
            if replica.name in LINKED:
                link = LossyLink(f"127.0.0.1:{replica.grpc_port}", arming, name=replica.name)
                links[replica.name] = link
                link.start()
        return {name: link.port for name, link in links.items()}

    try:
        for running in running_stack(tmp_path_factory, "lost-replies", envoy_upstreams=through_links):
            yield LossyMesh(running, arming, links)
    finally:
        # After the stack: Envoy is gone before the links it called through.
        for link in links.values():
            link.stop()


@pytest.fixture(scope="session")
def stack(lossy: LossyMesh) -> Stack:
    return lossy.stack


@pytest.fixture
def arming(lossy: LossyMesh) -> Iterator[Arming]:
    """The links' arming, with counters from zero for each test and disarmed after it."""
    lossy.arming.reset()
    yield lossy.arming
    lossy.arming.disarm()

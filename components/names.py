"""The Kubernetes name of a resource the program created, as an Output (and so a dependency edge)."""

from __future__ import annotations

from typing import Protocol

import pulumi
import pulumi_kubernetes as k8s


class _HasMetadata(Protocol):
    @property
    def metadata(self) -> pulumi.Output[k8s.meta.v1.outputs.ObjectMeta]: ...


def kubernetes_name(resource: _HasMetadata) -> pulumi.Output[str]:
    """`resource.metadata.name`; every resource here sets an explicit name, so it is never empty."""
    return resource.metadata.apply(lambda metadata: metadata.name or "")

"""DatabaseSnapshots: the manual RDS snapshots the release tool keeps of a stack's database."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from core.data_plan import SNAPSHOTS_TYPE, SnapshotSpec, utc_text


class DatabaseSnapshots(pulumi.ComponentResource):
    """One `aws.rds.Snapshot` per SnapshotSpec, taken before a risky migration.

    - The release tool decides which snapshots exist (a new one before a risky change, old ones
      dropped by the retention rule); this component only declares them, so a snapshot the plan no
      longer lists is deleted by the engine like any other resource.
    - Each snapshot is named by its identifier (the Pulumi name too), so a re-run of the same plan is
      a no-op, and its tags say which service, image and release it was taken for.
    - Creating one waits at most `timeout_minutes`: a snapshot that takes longer stops the release
      before anything changed, instead of holding it for the provider's default.
    """

    snapshots: pulumi.Output[list[dict[str, str]]]
    """[{"id", "sourceInstance", "createdAt", "service", "image", "releaseId"}], oldest first."""

    def __init__(
        self,
        name: str,
        snapshots: Sequence[SnapshotSpec],
        timeout_minutes: int,
        tags: dict[str, str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(SNAPSHOTS_TYPE, name, None, opts)
        if timeout_minutes < 1:
            raise ValueError(f"a snapshot's timeout is at least 1 minute, not {timeout_minutes}")
        identifiers = [spec.snapshot_id for spec in snapshots]
        repeated = sorted({identifier for identifier in identifiers if identifiers.count(identifier) > 1})
        if repeated:
            raise ValueError(f"each snapshot is declared once: {repeated}")
        ordered = sorted(snapshots, key=lambda spec: (spec.created_at, spec.snapshot_id))
        taken = [
            aws.rds.Snapshot(
                spec.snapshot_id,
                db_instance_identifier=spec.source_instance,
                db_snapshot_identifier=spec.snapshot_id,
                tags={**(tags or {}), **spec.tags()},
                opts=pulumi.ResourceOptions(
                    parent=self, custom_timeouts=pulumi.CustomTimeouts(create=f"{timeout_minutes}m")
                ),
            )
            for spec in ordered
        ]

        def listed(ids: list[str]) -> list[dict[str, str]]:
            return [
                {
                    "id": snapshot,
                    "sourceInstance": spec.source_instance,
                    "createdAt": utc_text(spec.created_at),
                    "service": spec.service,
                    "image": spec.image,
                    "releaseId": spec.release_id,
                }
                for spec, snapshot in zip(ordered, ids, strict=True)
            ]

        self.snapshots = pulumi.Output.all(*[snapshot.db_snapshot_identifier for snapshot in taken]).apply(
            listed
        )
        self.register_outputs({"snapshots": self.snapshots})

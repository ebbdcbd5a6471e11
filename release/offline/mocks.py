"""What Pulumi's mock runtime answers for the resources and calls of our programs: the outputs a
real provider would compute (an RDS instance's address and managed secret, an IAM role's ARN), and
for the data program a scratch instance a test can point at a local PostgreSQL
(release.offline.mock_runtime evaluates the programs with them)."""

from __future__ import annotations

import json
from typing import Any

import pulumi

MOCK_ACCOUNT = "000000000000"


class PlatformMocks(pulumi.runtime.Mocks):
    """Fills in the outputs a real provider would compute, per resource type."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        outputs = dict(args.inputs)
        if args.typ == "aws:rds/instance:Instance":
            identifier = args.inputs.get("identifier", args.name)
            region = "mock-region"
            address = f"{identifier}.mock.rds.invalid"
            port = int(args.inputs.get("port", 5432))
            outputs.update(
                address=address,
                port=port,
                endpoint=f"{address}:{port}",
                arn=f"arn:aws:rds:{region}:{MOCK_ACCOUNT}:db:{identifier}",
                masterUserSecrets=[
                    {
                        "secretArn": (
                            f"arn:aws:secretsmanager:{region}:{MOCK_ACCOUNT}:secret:rds!db-{identifier}"
                        ),
                        "secretStatus": "active",
                    }
                ],
            )
        if args.typ == "aws:iam/role:Role":
            outputs.update(arn=f"arn:aws:iam::{MOCK_ACCOUNT}:role/{args.name}-mock", name=f"{args.name}-mock")
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        raise NotImplementedError(
            f"the program called {args.token!r}, which the offline mocks do not know; "
            "add it to release.offline.mocks.PlatformMocks.call"
        )


MOCK_SCRATCH_USERNAME = "platform_admin"
MOCK_SCRATCH_PASSWORD = "test-only-scratch-password"
"""What the mocked master secret of a scratch instance holds: obviously fake, so a test can prove it
never appears in plain outputs or logs."""
MOCK_SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:111111111111:secret:rds!db-example"
SECRET_VERSION_TOKEN = "aws:secretsmanager/getSecretVersion:getSecretVersion"


class DataMocks(PlatformMocks):
    """The data program's mocks: an RDS instance answers at `<identifier>.db.example.test` (or
    `scratch_address`) on its declared port (or `scratch_port`), its managed master secret holds
    `scratch_password`, and a snapshot gets a creation time and an ARN. A test can point the scratch
    instance at a local PostgreSQL: DataMocks(scratch_address="127.0.0.1", scratch_port=port,
    scratch_password=password)."""

    def __init__(
        self,
        scratch_address: str | None = None,
        scratch_port: int | None = None,
        scratch_username: str = MOCK_SCRATCH_USERNAME,
        scratch_password: str = MOCK_SCRATCH_PASSWORD,
    ) -> None:
        self.scratch_address = scratch_address
        self.scratch_port = scratch_port
        self.scratch_username = scratch_username
        self.scratch_password = scratch_password

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        resource_id, outputs = super().new_resource(args)
        if args.typ == "aws:rds/instance:Instance":
            identifier = args.inputs.get("identifier", args.name)
            address = self.scratch_address or f"{identifier}.db.example.test"
            port = self.scratch_port or int(args.inputs.get("port", 5432))
            outputs.update(
                address=address,
                port=port,
                endpoint=f"{address}:{port}",
                username=self.scratch_username,
                masterUserSecrets=[{"secretArn": MOCK_SECRET_ARN, "secretStatus": "active"}],
            )
        if args.typ == "aws:rds/snapshot:Snapshot":
            snapshot = args.inputs.get("dbSnapshotIdentifier", args.name)
            outputs.update(
                snapshotCreateTime="2025-01-01T00:00:00Z",
                dbSnapshotArn=f"arn:aws:rds:eu-west-1:111111111111:snapshot:{snapshot}",
                status="available",
            )
        return resource_id, outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        if args.token == SECRET_VERSION_TOKEN:
            secret = {"username": self.scratch_username, "password": self.scratch_password}
            secret_id = args.args.get("secretId", MOCK_SECRET_ARN)
            return {
                "arn": secret_id,
                "id": secret_id,
                "secretId": secret_id,
                "secretString": json.dumps(secret),
                "versionId": "mock-version",
                "versionStages": ["AWSCURRENT"],
            }, []
        return super().call(args)

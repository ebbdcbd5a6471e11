"""`release keygen [--name N]`: print a new Ed25519 key pair for signing release records.

The private key is printed once, for the CI secret; the public key goes into Pulumi.yaml. Nothing is
written anywhere, and no project is needed.
"""

from __future__ import annotations

import argparse

from core.errors import ExitCode
from release.commands.options import Options, key_name
from release.commands.output import emit
from release.context import ReleaseContext


def add_parser(verbs: argparse._SubParsersAction, options: Options) -> None:
    parser = verbs.add_parser(
        "keygen",
        parents=[options.shared],
        help="print a new Ed25519 key pair for signing release records (private: CI secret; public: "
        "Pulumi.yaml)",
    )
    parser.add_argument(
        "--name",
        default="ci",
        type=key_name,
        help="the name to give the key in Pulumi.yaml (e.g. ci-2026-11)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: ReleaseContext) -> int:
    from release.history.signing import SIGNING_KEY_ENV, generate_key_pair

    pair = generate_key_pair()
    document = {"privateKey": pair.private_key, "publicKey": pair.public_key, "keyId": pair.key_id}
    text = (
        f"# A new Ed25519 signing key for release records (key id {pair.key_id}); see docs/signing.md.\n"
        f"# 1. Store the private key as the CI secret {SIGNING_KEY_ENV} (it is shown only now), e.g.\n"
        f"#    gh secret set {SIGNING_KEY_ENV} --env production   and paste:\n"
        f"{pair.private_key}\n"
        "# 2. Trust the public key: add it to Pulumi.yaml under releaseSigning.value.trustedKeys:\n"
        f"#      - name: {args.name}\n"
        f"#        publicKey: {pair.public_key}\n"
    )
    emit(args, document, text)
    return ExitCode.OK

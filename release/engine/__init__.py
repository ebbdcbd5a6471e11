"""The engine: the `Engine` protocol, its one adapter over pulumi.automation, and the JSON shapes
shared with the test double (release.testing.fake_engine)."""

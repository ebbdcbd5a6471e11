"""The stack config: its pydantic model and rules, and the only reader of Pulumi.yaml,
Pulumi.<stack>.yaml, engine config values and the program's runtime config."""

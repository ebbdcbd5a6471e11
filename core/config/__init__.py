"""The stack config, split by concern: `base` (names, patterns, the strict model base), `project`
(Pulumi.yaml's project-level values), `stack` (the per-stack knobs and the validated whole), `rules`
(every rule, checked at once) and `sources` (the only reader of Pulumi.yaml, Pulumi.<stack>.yaml,
engine config values and the program's runtime config). `pulumi_yaml` is the one safe YAML loader."""

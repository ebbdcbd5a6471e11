"""The Pulumi program's components.

One ComponentResource per module; type tokens `platform:components:<Name>`.
"""

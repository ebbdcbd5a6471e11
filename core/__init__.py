"""What the program, the release tool and the policy pack share; imports none of them.

errors (the error tree and exit codes), images (ImageRef), naming (type tokens and URNs),
health (the HTTP checker), text (escaping printed text), stack_name, config/ (the one config reader).
"""

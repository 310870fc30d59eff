"""The shop's application package: domain, services and infrastructure.

Nothing here imports Flask except the ``orders.web`` sub-package.
"""

"""callshield: the do-not-call shield for Asterisk.

The package is assembled from the repository's top-level folders (see pyproject.toml):
``core/`` is :mod:`callshield`, ``agi/`` :mod:`callshield.agi`, ``ari/`` :mod:`callshield.ari`,
``store/`` :mod:`callshield.store` and ``dialplan/`` the shipped Asterisk snippets.
"""

__version__ = "0.1.0"

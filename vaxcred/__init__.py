"""vaxcred: issue and verify EU-DCC compatible vaccine passports (HC1)."""

from __future__ import annotations

__version__ = "0.1.0"

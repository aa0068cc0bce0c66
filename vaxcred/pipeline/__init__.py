"""The national pipeline (issue 4): identity, records, registry check, site signing, corrections, issuance."""

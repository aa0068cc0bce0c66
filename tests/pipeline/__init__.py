"""Tests of the national pipeline (vaxcred.pipeline)."""

"""Shared network blocks and solvers used by several methods (torch)."""

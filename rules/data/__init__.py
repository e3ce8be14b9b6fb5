"""Packaged reference data for the pure core (DAQI breakpoints, GHG factors), via importlib."""

"""Ember's database: tables, connection and migrations."""

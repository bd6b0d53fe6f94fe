"""Placeholder plugin module."""

"""Tornado handlers and templating glue; each module ends with its ``routes``."""

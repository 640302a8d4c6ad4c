"""The dashboard pages: one module per page, each with ``render()`` and its ``INPUT_KEYS``."""

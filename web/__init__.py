"""The browser workbench, served by the server at ``/`` (static files only)."""

"""The truth of coedit: versioned documents, their revisions and the audit log.

Never imports ``server`` or ``channels``; the app factory wires it to the rest.
"""

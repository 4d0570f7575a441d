"""Who may do what: API tokens and roles, the audit log, the manual-command rate limit."""

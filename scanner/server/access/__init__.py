"""Who may do what: people, sessions and enrollment tokens (accounts), request authentication and roles (auth),
password hashing (passwords). Uses store only."""

"""Use cases of the caller's own account: profile, e-mail verification and SSH keys."""

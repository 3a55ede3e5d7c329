"""Use cases of the user API that the billing core lacks: account edits, SSH keys, IP ranges."""

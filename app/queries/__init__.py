"""Read-only queries behind the public catalogue and account views of the user API."""

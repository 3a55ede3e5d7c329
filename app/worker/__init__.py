"""The background worker: job handlers, the subscription lifecycle and VM provisioning (§9)."""

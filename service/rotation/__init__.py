"""Scheduled and on-demand rotation of secrets, through the backend protocol alone.

    schedule     when a secret is due: `every` or `cron` (UTC), window, jitter
    generators   how a new value is made, applied, tested and later revoked
    records      the rotation records and their leases in the store
    machine      create -> set -> test -> finish, then retire after grace
    planner      turns due schedule slots into rotations, once across processes
    consumers    who read which version, aggregated in memory and flushed
    token_reads  which tokens read which version, for a compromise to revoke
    events       structured logs, CloudEvents webhooks and Prometheus metrics
    worker       the background thread that drives all of the above
    service      the one object the broker and the HTTP API talk to

This module imports nothing, so `service.config` can import the settings.
"""

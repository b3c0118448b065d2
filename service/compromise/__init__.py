"""Compromise response: a secret version or a whole service, in one call.

`service.py` is what the broker and the API use; `secret.py` and
`breakglass.py` are the two responses; `containment.py` is what every broker
process does once one is announced; `records.py`, `exposure.py` and
`report.py` keep and read back the reports.
"""

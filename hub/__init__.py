"""The headquarters service: trust root (registry, enrolment), aggregation of
every centre's records, and the hub side of the sync protocol."""

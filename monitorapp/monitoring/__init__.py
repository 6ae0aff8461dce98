"""The domain of checks: the outbound policy, the probe, the scheduler, the jobs."""

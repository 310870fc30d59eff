"""The pipeline: job types, jobs and leases, one runner, the steps, the sweeper."""

"""Running jobs: what happens inside a job process (Celery pool process or simulator).

`process.JobProcess` bootstraps a job process; `chunk.ChunkRunner` claims and records;
`execution.run_job` runs one job; `state_file` is what the warden reads.
"""

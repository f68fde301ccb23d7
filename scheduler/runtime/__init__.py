"""The live service's I/O shell around ``scheduler.core``: Ray, NVML, SQLite, HTTP.

Nothing here decides where or when a job runs; it turns the world into core events and the
core's actions into Ray Train runs.
"""

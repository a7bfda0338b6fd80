"""What a run measured: counters and histograms, delivery accounting, time series, SLA
verdicts, the live view and the Prometheus endpoint. They listen to the transports'
results; they never produce load.
"""

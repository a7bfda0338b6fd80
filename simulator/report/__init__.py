"""Rendering a run's report: the JSON and CSV files, the terminal summary, the HTML page
and its SVG charts.
"""

"""Reports: one self-contained HTML file per run."""

"""Run reports: figures and a small document model rendered to HTML and Markdown."""

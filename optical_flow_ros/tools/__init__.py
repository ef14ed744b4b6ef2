"""Command-line tools: documentation generation, demo, bag processing."""

"""webhookd: a self-hosted webhook delivery daemon for commerce platforms."""

__version__ = "0.1.0"

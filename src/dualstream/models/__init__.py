"""Models: self-attention fusion, dual-stream networks and the registry."""

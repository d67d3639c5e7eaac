"""Video folder -> prepared cache (README "How it is built")."""

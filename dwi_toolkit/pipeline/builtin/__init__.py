"""Built-in pipeline definitions (TOML), shipped as package data; see docs/pipeline.md."""

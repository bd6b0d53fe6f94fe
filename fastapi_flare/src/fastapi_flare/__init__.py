"""fastapi-flare: placeholder."""

"""The websocket wire: ping/pong formats (target app and templates), error kinds and their classification, a plain ping client."""

"""Build and download artifacts, cached under the user cache dir."""

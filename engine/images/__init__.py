"""Reading images robustly and identifying them by content."""

from engine.images.ids import content_id, file_content_id
from engine.images.io import IMAGE_SUFFIXES, ImageReadError, read_rgb

__all__ = ["IMAGE_SUFFIXES", "ImageReadError", "content_id", "file_content_id", "read_rgb"]

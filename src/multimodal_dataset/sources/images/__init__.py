"""Image sources: encoded files or table bytes, decoded, resized, augmented, cached."""

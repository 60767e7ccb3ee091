"""Media files: still images and clips read and written, input and output checks, atomic
writes, comparisons and finding media by content. Knows files and codecs, not pooling."""

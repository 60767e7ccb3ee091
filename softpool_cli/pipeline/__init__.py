"""One image or one clip from input file to output files: read, check, pool, compare, encode,
write atomically. Shared by the commands, the gallery and batches."""

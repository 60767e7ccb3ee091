"""``softpool batch``: a whole tree of images and clips pooled into a mirror tree.

- `core`: the engine-neutral work for one file, ``pool_file(source, target, settings)``, over
  local paths or fsspec URLs (s3://, gs://, memory://, ...), writing all or nothing.
- `plan`: the files of a source tree, and which outputs are already up to date (the record).
- `local`: worker processes on this machine; `cluster`: the same work on a Dask cluster.
"""

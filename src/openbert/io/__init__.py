"""Files: atomic writers (``fileio``), the encodings TF files share (``protobuf``: masked CRC32C,
protobuf wire format), TFRecord files (``tfrecord``) and memory-mapped shard folders (``shards``)."""

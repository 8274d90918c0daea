"""The lake: Parquet files per project and partition, published through atomic manifests."""

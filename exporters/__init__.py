"""Writers of deployed networks to on-disk formats (lava-dl netx HDF5)."""

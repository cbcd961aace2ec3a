"""h5py session files: schema, one background writer thread, and a reader that hands out numpy arrays."""

"""Reference catalogs: sources (local files, online services) normalised to one set of columns."""

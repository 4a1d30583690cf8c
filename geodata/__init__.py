"""District boundary, deterministic demo data, coordinate systems and file import/export."""

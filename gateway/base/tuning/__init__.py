"""Every place pli leans on another project's internals for speed or memory, fenced here."""
